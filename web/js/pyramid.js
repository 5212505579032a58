// Opens an NGFF 0.5 multiscale image (c, y, x uint8 RGB) and its superpixel label pyramid,
// and reads 2-D regions of any level as plain typed arrays.
import { zarr } from "./stores.js";

function multiscales(attrs) {
  const ms = (attrs.ome || attrs).multiscales;
  if (!ms || !ms.length) throw new Error("not an OME-Zarr multiscale group (no multiscales)");
  return ms[0];
}

function scaleOf(dataset) {
  const t = (dataset.coordinateTransformations || []).find((c) => c.type === "scale");
  const s = t ? t.scale : [1, 1, 1];
  return s[s.length - 1];
}

// levels[k] = {array, width, height, factor}: factor = level-0 image pixels per pixel of level k.
async function openLevels(location, baseScale) {
  const group = await zarr.open.v3(location, { kind: "group" });
  const ms = multiscales(group.attrs);
  const levels = [];
  for (const ds of ms.datasets) {
    const array = await zarr.open.v3(location.resolve(ds.path), { kind: "array" });
    const shape = array.shape;
    levels.push({
      array,
      height: shape[shape.length - 2],
      width: shape[shape.length - 1],
      chunkH: array.chunks[array.chunks.length - 2],
      chunkW: array.chunks[array.chunks.length - 1],
      factor: scaleOf(ds) / (baseScale ?? scaleOf(ms.datasets[0])),
    });
  }
  return { attrs: group.attrs, levels, scale0: scaleOf(ms.datasets[0]) };
}

export async function openImage(store) {
  const root = zarr.root(store);
  const image = await openLevels(root);
  const info = image.attrs.histolabel || {};
  image.width = info.width || image.levels[0].width;
  image.height = info.height || image.levels[0].height;
  image.mpp = info.mpp || null;
  image.root = root;
  return image;
}

export async function openLabels(image, name = "superpixels") {
  try {
    return await openLevels(image.root.resolve(`labels/${name}`), image.scale0);
  } catch (err) {
    if (err && (err.name === "NotFoundError" || /not found/i.test(String(err.message)))) return null;
    throw err;
  }
}

// A (rows, cols) region of one level; the channel axis (if any) is kept whole.
export async function readRegion(level, y0, x0, h, w, signal) {
  const nd = level.array.shape.length;
  const sel = [];
  for (let i = 0; i < nd - 2; i++) sel.push(null);
  sel.push(zarr.slice(y0, y0 + h), zarr.slice(x0, x0 + w));
  return zarr.get(level.array, sel, { opts: { signal } });
}

// Planar uint8 RGB (3, h, w) to RGBA ImageData.
export function planarToImageData(data, h, w) {
  const img = new ImageData(w, h);
  const out = img.data;
  const n = h * w;
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    out[j] = data[i];
    out[j + 1] = data[n + i];
    out[j + 2] = data[2 * n + i];
    out[j + 3] = 255;
  }
  return img;
}
