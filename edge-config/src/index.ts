export * from './cidr';
export * from './schema';
export * from './render';
