import { InputError } from '../../errors.js';
import { E_BAD_PAIRING_KEY } from './errors.js';

/** A pairing key is 32 bytes shared by both proxies, written as 64 hex characters. */
export function parsePairingKey(value: unknown, field = 'pairingKey'): Buffer {
  if (Buffer.isBuffer(value) && value.length === 32) return Buffer.from(value);
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value.trim())) {
    const shown = typeof value === 'string' ? `${value.length} characters` : typeof value;
    throw new InputError(E_BAD_PAIRING_KEY, `${field}: expected a pairing key of 64 hex characters (32 bytes), got ${shown}`, { details: { field } });
  }
  return Buffer.from(value.trim(), 'hex');
}
