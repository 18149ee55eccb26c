import { request as httpRequest } from "node:http";

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * A cookie-keeping HTTP client over real sockets (for tests against real Latchkey processes), sending from a loopback
 * address of its own (127.0.0.0/8) so that per-IP limits see many clients, as behind a real network.
 */
export class HttpClient {
  readonly cookies = new Map<string, string>();
  constructor(
    private readonly localAddress = "127.0.0.1",
    /** The Origin a browser would send with a form: the public URL's, whichever instance the request goes to. */
    private readonly origin?: string,
  ) {}

  async request(
    base: string,
    method: "GET" | "POST" | "DELETE",
    path: string,
    options: { json?: unknown; form?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<HttpAnswer> {
    const url = new URL(path, base);
    const headers: Record<string, string> = {};
    if (this.cookies.size) headers["cookie"] = [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    let payload: string | undefined;
    if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(options.json);
    } else if (options.form) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      headers["origin"] = this.origin ?? url.origin;
      payload = new URLSearchParams(options.form).toString();
    }
    if (payload !== undefined) headers["content-length"] = String(Buffer.byteLength(payload));
    return new Promise<HttpAnswer>((resolve, reject) => {
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname + url.search,
          method,
          headers,
          localAddress: this.localAddress,
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("error", reject);
          res.on("end", () => {
            for (const line of res.headers["set-cookie"] ?? []) {
              const [pair = "", ...attributes] = line.split(";");
              const at = pair.indexOf("=");
              const name = pair.slice(0, at).trim();
              const value = pair.slice(at + 1).trim();
              const gone = value === "" || attributes.some((a) => /^\s*max-age=0\s*$/i.test(a));
              if (gone) this.cookies.delete(name);
              else this.cookies.set(name, value);
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") });
          });
        },
      );
      req.setTimeout(options.timeoutMs ?? 15_000, () => req.destroy(new Error("timed out")));
      req.on("error", reject);
      req.end(payload);
    });
  }
}
