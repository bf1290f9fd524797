export * from './cidr';
export * from './log-events';
export * from './render';
export * from './schema';
