export { RedisBus, type RedisBusOptions } from './bus.js';
