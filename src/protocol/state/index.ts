export * from './blob.js';
export * from './constants.js';
export * from './crypto.js';
export * from './errors.js';
export * from './header.js';
export * from './key.js';
export * from './tlv.js';
