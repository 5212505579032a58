// The API client: Cognito login (USER_PASSWORD_AUTH or the hosted UI's returned token), the
// bearer token on every call, retries with the same idempotency key (so a flaky network never
// duplicates an edit), and an outbox that shows which edits are pending or failed.

export class ApiError extends Error {
  constructor(status, body, retryAfter = null) {
    super((body && (body.detail || body.error)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
    this.field = body && body.field;
    this.body = body;
    this.retryAfter = retryAfter; // seconds the server asked us to wait (Retry-After), or null
  }
}

// Retry-After in seconds (its HTTP-date form too), or null.
function retryAfterOf(res) {
  const v = res.headers.get("Retry-After");
  if (!v) return null;
  const s = /^\d+$/.test(v.trim()) ? Number(v) : (Date.parse(v) - Date.now()) / 1000;
  return Number.isFinite(s) ? Math.max(0, s) : null;
}

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TOKEN_KEY = "histolabel.idToken";

export class Api extends EventTarget {
  constructor(baseUrl) {
    super();
    this.base = baseUrl.replace(/\/$/, "");
    this.token = sessionStorage.getItem(TOKEN_KEY);
    this.retryDelays = [250, 750, 2000, 4000];
    this.stats = { attempts: 0, retries: 0 };
  }

  get signedIn() {
    if (!this.token) return false;
    try {
      const claims = JSON.parse(atob(this.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return claims.exp * 1000 > Date.now();
    } catch {
      return false;
    }
  }

  claims() {
    return JSON.parse(atob(this.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  }

  setToken(token) {
    this.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  async loginConfig() {
    if (!this._config) this._config = await this.request("GET", "/config", undefined, { auth: false });
    return this._config;
  }

  async login(username, password, newPassword = "") {
    const cfg = await this.loginConfig();
    const endpoint = cfg.cognitoEndpoint || `https://cognito-idp.${cfg.region}.amazonaws.com/`;
    const cognito = (target, payload) => fetch(endpoint, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": `AWSCognitoIdentityProviderService.${target}`,
      },
      body: JSON.stringify(payload),
    });
    let res = await cognito("InitiateAuth", {
      AuthFlow: "USER_PASSWORD_AUTH",
      ClientId: cfg.clientId,
      AuthParameters: { USERNAME: username, PASSWORD: password },
    });
    let body = await res.json().catch(() => ({}));
    if (res.ok && body.ChallengeName === "NEW_PASSWORD_REQUIRED") {
      // An invited user's temporary password: they choose their own before the first token.
      if (!newPassword) {
        const err = new Error("Your password is temporary: choose your own below, then sign in again");
        err.code = "new_password_required";
        throw err;
      }
      res = await cognito("RespondToAuthChallenge", {
        ChallengeName: "NEW_PASSWORD_REQUIRED",
        ClientId: cfg.clientId,
        Session: body.Session,
        ChallengeResponses: { USERNAME: username, NEW_PASSWORD: newPassword },
      });
      body = await res.json().catch(() => ({}));
    }
    if (!res.ok || !body.AuthenticationResult) {
      const msg = body.message || body.Message || body.__type || `sign-in failed (HTTP ${res.status})`;
      throw new Error(msg.includes("NotAuthorized") ? "Wrong username or password" : msg);
    }
    this.setToken(body.AuthenticationResult.IdToken);
    return this.claims();
  }

  // Token returned by the Cognito hosted UI (implicit grant) in the URL fragment.
  takeHostedToken() {
    const frag = new URLSearchParams(location.hash.slice(1));
    const token = frag.get("id_token");
    if (token) {
      this.setToken(token);
      history.replaceState(null, "", location.pathname + location.search);
    }
    return !!token;
  }

  logout() {
    this.setToken(null);
  }

  // One call; network errors, 429, 502-504 (and 503 "contention") are retried with backoff.
  // The idempotency key travels as the `Idempotency-Key` header (allowed by the API's CORS
  // settings); writers also put it in the body (`idempotency_key`), which the API accepts too.
  async request(method, path, body, { auth = true, idempotencyKey, retries, query } = {}) {
    let url = this.base + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
      const s = q.toString();
      if (s) url += `?${s}`;
    }
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && this.token) headers.Authorization = `Bearer ${this.token}`;
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    const delays = retries === undefined ? (method === "GET" || idempotencyKey ? this.retryDelays : []) : retries;
    for (let attempt = 0; ; attempt++) {
      this.stats.attempts++;
      let res;
      try {
        res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      } catch (err) {
        if (attempt < delays.length) {
          this.stats.retries++;
          await sleep(delays[attempt]);
          continue;
        }
        throw new ApiError(0, { error: "network", detail: `network error: ${err.message}` });
      }
      const retryAfter = retryAfterOf(res);
      if ([429, 502, 503, 504].includes(res.status) && attempt < delays.length) {
        this.stats.retries++;
        await sleep(Math.max(delays[attempt], Math.min((retryAfter || 0) * 1000, 10_000)));
        continue;
      }
      const text = await res.text();
      let data = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch {
        data = text;
      }
      if (res.status === 401 && auth) this.dispatchEvent(new Event("unauthorized"));
      if (!res.ok) throw new ApiError(res.status, data, retryAfter);
      return data;
    }
  }

  get(path, query) {
    return this.request("GET", path, undefined, { query });
  }
  post(path, body, opts) {
    return this.request("POST", path, body === undefined ? {} : body, opts);
  }
  patch(path, body) {
    return this.request("PATCH", path, body);
  }
  put(path, body) {
    return this.request("PUT", path, body);
  }
  del(path) {
    return this.request("DELETE", path);
  }
}

// 4xx answers other than an expired session (401), a timeout (408) or throttling (429).
function refused(err) {
  return err instanceof ApiError && err.status >= 400 && err.status < 500 && ![401, 408, 429].includes(err.status);
}

// Label edits: each gets a key once, kept across retries and manual re-sends, so the server
// writes it at most once. Failed edits stay listed until re-sent; refused ones are dropped and
// announced, so the app can show the server's state again.
export class Outbox extends EventTarget {
  constructor(api) {
    super();
    this.api = api;
    this.items = new Map(); // key -> {key, path, body, state, error}
  }

  send(path, body, { onDone } = {}) {
    const key = newKey();
    const item = { key, path, body: { ...body, idempotency_key: key }, state: "pending", error: null, onDone };
    this.items.set(key, item);
    return this.#run(item);
  }

  async #run(item) {
    item.state = "pending";
    this.#changed();
    try {
      const res = await this.api.post(item.path, item.body, { idempotencyKey: item.key });
      this.items.delete(item.key);
      this.#changed();
      if (item.onDone) item.onDone(res);
      return res;
    } catch (err) {
      item.error = err;
      if (refused(err)) {
        // The server answered and said no: re-sending the same edit cannot succeed.
        item.state = "refused";
        this.items.delete(item.key);
        this.#changed();
        this.dispatchEvent(new CustomEvent("refused", { detail: item }));
        throw err;
      }
      item.state = "failed";
      this.#changed();
      this.dispatchEvent(new CustomEvent("failed", { detail: item }));
      this.#resendLater(item, err);
      throw err;
    }
  }

  // The server said "not now" (503, 429): the edit stays in the outbox and goes again, with its
  // key, after the Retry-After it gave (doubling per try, at most a minute), until it is stored
  // or refused. Other failures wait for the Retry button.
  #resendLater(item, err) {
    if (!(err instanceof ApiError) || ![429, 503].includes(err.status)) return;
    item.tries = (item.tries || 0) + 1;
    const wait = Math.min(60_000, Math.max(1000, (err.retryAfter ?? 2) * 1000) * 2 ** (item.tries - 1));
    clearTimeout(item.timer);
    item.timer = setTimeout(() => {
      if (this.items.get(item.key) === item && item.state === "failed") this.#run(item).catch(() => {});
    }, wait);
  }

  retryFailed() {
    return Promise.allSettled([...this.items.values()].filter((i) => i.state === "failed").map((i) => this.#run(i)));
  }

  get pending() {
    return [...this.items.values()].filter((i) => i.state === "pending").length;
  }

  get failed() {
    return [...this.items.values()].filter((i) => i.state === "failed");
  }

  #changed() {
    this.dispatchEvent(new Event("change"));
  }
}
