/**
 * What an instance type can boot, read from its name the way AWS names
 * families: Graviton families carry a `g` after the generation digit (m6g,
 * c7gn, t4g, r6gd) and `a1` is the first Arm type; x86 types from the 5th
 * generation on are Nitro and boot UEFI as well as legacy BIOS; the first
 * three generations also ran paravirtual images. The emulated catalog has no
 * such fields, so the model derives them; AWS answers them itself.
 */
export interface TypeTraits {
  architectures: string[];
  virtualizationTypes: string[];
  bootModes: string[];
}

export function typeTraits(type: string): TypeTraits {
  const family = type.split('.')[0] ?? '';
  const generation = Number(/\d+/.exec(family)?.[0] ?? '0');
  const arm = family === 'a1' || /^[a-z]+\d+g[a-z]*$/.test(family);
  if (arm) return { architectures: ['arm64'], virtualizationTypes: ['hvm'], bootModes: ['uefi'] };
  return {
    architectures: ['i386', 'x86_64'].slice(generation >= 5 ? 1 : 0),
    virtualizationTypes: generation <= 3 ? ['hvm', 'paravirtual'] : ['hvm'],
    bootModes: generation >= 5 ? ['legacy-bios', 'uefi'] : ['legacy-bios'],
  };
}
