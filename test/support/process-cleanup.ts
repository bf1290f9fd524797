/** vitest setup file: whatever a test file started through `spawnTracked` ends with the file, pass or fail. */
import { afterAll } from 'vitest';
import { stopAllTracked } from './processes';

afterAll(() => stopAllTracked());
