export * from './aws-fake';
