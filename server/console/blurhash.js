// BlurHash decoding (https://blurha.sh, the algorithm of woltapp/blurhash's reference
// decoder): the media JSON's "placeholder" drawn on a small canvas while the
// thumbnail loads.

const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~';

function decode83(text) {
  let value = 0;
  for (const c of text) {
    const digit = DIGITS.indexOf(c);
    if (digit < 0) throw new Error('not a BlurHash');
    value = value * 83 + digit;
  }
  return value;
}

const toLinear = v => { const x = v / 255; return x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; };
const toSrgb = v => {
  const x = Math.max(0, Math.min(1, v));
  return Math.round((x <= 0.0031308 ? x * 12.92 : 1.055 * x ** (1 / 2.4) - 0.055) * 255);
};
const signPow = (v, e) => Math.sign(v) * Math.abs(v) ** e;

/** RGBA pixels (width × height) for a BlurHash; throws on a malformed one. */
export function decode(hash, width, height) {
  if (typeof hash !== 'string' || hash.length < 6) throw new Error('not a BlurHash');
  const size = decode83(hash[0]);
  const nx = (size % 9) + 1, ny = Math.floor(size / 9) + 1;
  if (hash.length !== 4 + 2 * nx * ny) throw new Error('not a BlurHash');
  const max = (decode83(hash[1]) + 1) / 166;
  const colors = [];
  const dc = decode83(hash.slice(2, 6));
  colors.push([toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]);
  for (let i = 1; i < nx * ny; i++) {
    const v = decode83(hash.slice(4 + i * 2, 6 + i * 2));
    colors.push([Math.floor(v / 361), Math.floor(v / 19) % 19, v % 19]
      .map(q => signPow((q - 9) / 9, 2) * max));
  }
  const pixels = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let r = 0, g = 0, b = 0;
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const basis = Math.cos(Math.PI * x * i / width) * Math.cos(Math.PI * y * j / height);
          const c = colors[i + j * nx];
          r += c[0] * basis; g += c[1] * basis; b += c[2] * basis;
        }
      }
      const p = 4 * (x + y * width);
      pixels[p] = toSrgb(r); pixels[p + 1] = toSrgb(g); pixels[p + 2] = toSrgb(b); pixels[p + 3] = 255;
    }
  }
  return pixels;
}

/** A canvas showing the placeholder, or null when there is none or it is malformed. */
export function placeholderCanvas(hash, cls = 'placeholder') {
  if (!hash) return null;
  const w = 32, h = 32;
  try {
    const canvas = document.createElement('canvas');
    canvas.width = w; canvas.height = h;
    canvas.className = cls;
    canvas.setAttribute('aria-hidden', 'true');
    const ctx = canvas.getContext('2d');
    const img = ctx.createImageData(w, h);
    img.data.set(decode(hash, w, h));
    ctx.putImageData(img, 0, 0);
    return canvas;
  } catch {
    return null;
  }
}
