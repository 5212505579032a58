// zarrita stores for the slide pyramids. In the app every key is resolved through the API to a
// short-lived presigned S3 URL (no AWS credentials in the browser); the browser then reads the
// bytes, with Range requests for shard indexes and inner chunks, straight from S3.
import * as zarr from "../vendor/zarrita.js";

const RENEW_MARGIN_MS = 60_000;

// Resolves slide-relative keys to presigned URLs, batching the keys asked for in one tick
// into one POST .../data/urls (the viewer asks for many shards at once when it opens).
export class PresignedUrls {
  constructor(api, project, slide) {
    this.api = api;
    this.base = `/projects/${encodeURIComponent(project)}/slides/${encodeURIComponent(slide)}/data/urls`;
    this.cache = new Map(); // key -> {url, expires}
    this.pending = new Map(); // key -> [resolve, reject][]
    this.timer = null;
  }

  resolve(key) {
    const hit = this.cache.get(key);
    if (hit && hit.expires - RENEW_MARGIN_MS > Date.now()) return Promise.resolve(hit.url);
    return new Promise((resolve, reject) => {
      if (!this.pending.has(key)) this.pending.set(key, []);
      this.pending.get(key).push([resolve, reject]);
      if (!this.timer) this.timer = setTimeout(() => this.flush(), 0);
    });
  }

  async flush() {
    this.timer = null;
    const batch = new Map(this.pending);
    this.pending.clear();
    const keys = [...batch.keys()];
    for (let i = 0; i < keys.length; i += 1000) {
      const part = keys.slice(i, i + 1000);
      try {
        const res = await this.api.post(this.base, { keys: part });
        const expires = Date.now() + (res.expires_in || 300) * 1000;
        for (const key of part) {
          const url = res.urls[key];
          if (url) this.cache.set(key, { url, expires });
          for (const [ok, fail] of batch.get(key)) {
            if (url) ok(url);
            else fail(new Error(`no URL for ${key}`));
          }
        }
      } catch (err) {
        for (const key of part) for (const [, fail] of batch.get(key)) fail(err);
      }
    }
  }
}

async function readBody(response, key) {
  if (response.status === 404 || response.status === 403) return undefined; // S3 answers 403 for a missing key without ListBucket
  if (!response.ok) throw new Error(`${key}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

// A zarrita store over one zarr hierarchy inside a slide folder, e.g. prefix "image.ome.zarr".
export class PresignedStore {
  constructor(urls, prefix) {
    this.urls = urls;
    this.prefix = prefix.replace(/\/$/, "");
  }

  #key(path) {
    return `${this.prefix}${path}`; // zarrita paths start with "/"
  }

  async get(path, options = {}) {
    const key = this.#key(path);
    const url = await this.urls.resolve(key);
    return readBody(await fetch(url, { signal: options.signal }), key);
  }

  async getRange(path, range, options = {}) {
    const key = this.#key(path);
    const url = await this.urls.resolve(key);
    const header = "suffixLength" in range
      ? `bytes=-${range.suffixLength}`
      : `bytes=${range.offset}-${range.offset + range.length - 1}`;
    return readBody(await fetch(url, { headers: { Range: header }, signal: options.signal }), key);
  }
}

// Plain HTTP (a static folder): the benchmark page and the stand-alone viewer use this.
export function httpStore(url) {
  return new zarr.FetchStore(url.replace(/\/$/, ""));
}

export { zarr };
