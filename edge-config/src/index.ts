export * from './cidr';
export * from './schema';
