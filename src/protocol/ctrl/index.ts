export * from './commands.js';
export * from './ioctl.js';
export * from './messages.js';
export * from './socket.js';
