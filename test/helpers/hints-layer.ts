import { Layer } from '../../src/proxy/layer.js';

/** Records the prefetch hints that reach it (read-ahead and push-policy tests). */
export class Hints extends Layer {
  readonly name = 'hints';
  hints: Array<[number, number]> = [];
  override async prefetch(offset: number, length: number): Promise<void> {
    this.hints.push([offset, length]);
  }
}
