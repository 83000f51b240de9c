/**
 * Reads a JSON body exactly as sent: at most `maxBytes` (counted while
 * streaming, so a chunked body cannot slip past a missing Content-Length),
 * strict UTF-8 (never replaced by U+FFFD), then JSON.
 */
export class BodyError extends Error {
  override name = "BodyError";
  constructor(
    readonly status: 400 | 413,
    message: string,
  ) {
    super(message);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export async function readJsonBody(request: Request, maxBytes: number): Promise<unknown> {
  const text = decode(await readBytes(request, maxBytes));
  try {
    return JSON.parse(text);
  } catch {
    throw new BodyError(400, "The request body is not valid JSON");
  }
}

export function tooLargeMessage(maxBytes: number): string {
  return `The request body is larger than ${maxBytes} bytes (MAX_BODY_BYTES)`;
}

async function readBytes(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) throw new BodyError(413, tooLargeMessage(maxBytes));
  if (!request.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) throw new BodyError(413, tooLargeMessage(maxBytes));
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof BodyError) throw error;
    throw new BodyError(400, "The request body could not be read");
  } finally {
    reader.releaseLock();
  }
  return Buffer.concat(chunks);
}

function decode(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new BodyError(400, "The request body is not valid UTF-8");
  }
}
