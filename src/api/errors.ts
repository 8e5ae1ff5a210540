import { SpillwayError } from '../errors.js';

/** An error the API answers with a status of its own. */
export class ApiError extends SpillwayError {
  constructor(readonly status: number, code: string, message: string) {
    super(code, message);
  }
}
