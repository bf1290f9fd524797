export * from './common';
export * from './transcript';
export * from './keys';
export * from './audit';
export * from './session';
export * from './intake';
export * from './enrichment';
export * from './mcp-session';
