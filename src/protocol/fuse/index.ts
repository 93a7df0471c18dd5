export * from './layout.js';
export * from './replies.js';
export * from './requests.js';
