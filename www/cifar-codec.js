// The built-in CIFAR-10 asset's lossless pre-filter, both ways (scripts/cifar-asset.mjs
// encodes at build time, the page decodes): CIFAR-10 records (a label byte, then the 32×32
// red, green and blue planes) become all the labels, then per image the planes G, R−G, B−G
// (mod 256, centred on 128), each as residuals of the LOCO-I median edge predictor (the one
// of JPEG-LS). Gzip then stores 0.53 of the raw records where plain gzip stores 0.95
// (measured on the shared 10 000-image subset; README, "CIFAR-10 on a self-hosted page").
// Pure functions of bytes: no DOM, so node runs them too.

const SIDE = 32;
const PLANE = SIDE * SIDE;
/** Bytes of one CIFAR-10 record: the label, then three planes. */
export const RECORD = 1 + 3 * PLANE;

/** The median edge predictor of left `a`, above `b` and above-left `c` (0 off the image). */
function med(a, b, c) {
  const hi = a > b ? a : b;
  const lo = a > b ? b : a;
  return c >= hi ? lo : c <= lo ? hi : a + b - c;
}

/** Filters one plane `src` (values) into residuals `dst`, or back when `inverse`. */
function plane(src, dst, inverse) {
  const v = inverse ? dst : src; // predictions read original values
  for (let y = 0, i = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++, i++) {
      const a = x ? v[i - 1] : 0;
      const b = y ? v[i - SIDE] : 0;
      const c = x && y ? v[i - SIDE - 1] : 0;
      const p = med(a, b, c);
      dst[i] = inverse ? (src[i] + p) & 255 : (src[i] - p) & 255;
    }
  }
}

/** Records (Uint8Array, a whole number of RECORD) → the filtered bytes, same length. */
export function encodeRecords(records) {
  const n = records.length / RECORD;
  const out = new Uint8Array(records.length);
  const t = new Uint8Array(PLANE);
  for (let k = 0; k < n; k++) {
    const rec = records.subarray(k * RECORD, (k + 1) * RECORD);
    out[k] = rec[0];
    const g = rec.subarray(1 + PLANE, 1 + 2 * PLANE);
    for (let ch = 0; ch < 3; ch++) {
      const src = rec.subarray(1 + ch * PLANE, 1 + (ch + 1) * PLANE);
      for (let i = 0; i < PLANE; i++) t[i] = ch === 1 ? src[i] : (src[i] - g[i] + 128) & 255;
      plane(t, out.subarray(n + (k * 3 + ch) * PLANE, n + (k * 3 + ch + 1) * PLANE), false);
    }
  }
  return out;
}

/** The inverse of encodeRecords: filtered bytes → CIFAR-10 records, written into `out`; only
 * images [from, to) when given (the page decodes in slices, to keep its thread responsive). */
export function decodeRecords(bytes, out = new Uint8Array(bytes.length), from = 0, to = bytes.length / RECORD) {
  if (bytes.length % RECORD) throw new Error(`The CIFAR-10 asset holds ${bytes.length} bytes, not a whole number of ${RECORD}-byte records.`);
  const n = bytes.length / RECORD;
  const t = new Uint8Array(PLANE);
  for (let k = from; k < to; k++) {
    const rec = out.subarray(k * RECORD, (k + 1) * RECORD);
    rec[0] = bytes[k];
    const g = rec.subarray(1 + PLANE, 1 + 2 * PLANE);
    for (const ch of [1, 0, 2]) { // green first: the others are stored as differences to it
      const res = bytes.subarray(n + (k * 3 + ch) * PLANE, n + (k * 3 + ch + 1) * PLANE);
      const dst = rec.subarray(1 + ch * PLANE, 1 + (ch + 1) * PLANE);
      plane(res, ch === 1 ? dst : t, true);
      if (ch !== 1) for (let i = 0; i < PLANE; i++) dst[i] = (t[i] + g[i] - 128) & 255;
    }
  }
  return out;
}
