export * from './cidr';
export * from './schema';
export * from './render';
export * from './log-events';
