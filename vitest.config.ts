import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: keep parallelism modest so interop tests with real sockets are not starved.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
