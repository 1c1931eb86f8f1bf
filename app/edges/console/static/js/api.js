// Talking to the /v1 API as the signed-in session: the cookie authenticates, every
// change carries the session's CSRF token.

export const CSRF = document.body.dataset.csrf;

export class ApiError extends Error {
  constructor(status, error) {
    super((error && error.message) || `the service answered ${status}`);
    this.status = status;
    this.code = error && error.code;
    this.errors = (error && error.errors) || [];
  }
}

export async function api(method, path, data) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (data !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(data);
  }
  if (method !== "GET") options.headers["X-CSRF-Token"] = CSRF;
  const response = await fetch("/v1" + path, options);
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (response.status === 401) {
    location.href = "/console/sign-in?next=" + encodeURIComponent(location.pathname + location.search);
  }
  if (!response.ok) throw new ApiError(response.status, json && json.error);
  return json;
}

export const get = (path) => api("GET", path);

export const post = (path, data) => api("POST", path, data);

export const put = (path, data) => api("PUT", path, data);
