// A raw HTTP/2 client over a TCP socket, to send what well-behaved libraries never send:
// hand-built frames (HPACK literals without indexing), floods, truncations. Node built-ins only.
import net from 'node:net';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
export const T = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 };
export const F = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 };

export function frame(type, flags, stream, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

// HPACK integer with an n-bit prefix.
function hpackInt(value, prefixBits, firstByteFlags) {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByteFlags | value]);
  const out = [firstByteFlags | max];
  value -= max;
  while (value >= 128) {
    out.push((value % 128) + 128);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return Buffer.from(out);
}

// One header field as "literal without indexing, new name", no Huffman.
export function hpackField(name, value) {
  const n = Buffer.from(name);
  const v = Buffer.from(value);
  return Buffer.concat([Buffer.from([0x00]), hpackInt(n.length, 7, 0), n, hpackInt(v.length, 7, 0), v]);
}

export function headerBlock(fields) {
  return Buffer.concat(fields.map(([n, v]) => hpackField(n, v)));
}

export function grpcHeaders(path, extra = []) {
  return headerBlock([
    [':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', 'localhost'],
    ['content-type', 'application/grpc'], ['te', 'trailers'], ...extra,
  ]);
}

export function settingsFrame() {
  return frame(T.SETTINGS, 0, 0);
}

export function rstFrame(stream, code = 8) {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(T.RST_STREAM, 0, stream, p);
}

// A connection that collects the frames the server sends.
export class RawConn {
  static open(port) {
    return new Promise((resolve, reject) => {
      const c = new RawConn();
      c.sock = net.connect(port, '127.0.0.1', () => resolve(c));
      c.sock.on('error', (e) => {
        c.error = e;
        reject(e);
      });
    });
  }
  constructor() {
    this.buf = Buffer.alloc(0);
    this.frames = [];
    this.closed = false;
    this.waiters = [];
  }
  set sock(s) {
    this._sock = s;
    s.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        const f = { type: this.buf[3], flags: this.buf[4], stream: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) };
        this.buf = this.buf.subarray(9 + len);
        this.frames.push(f);
        // Acknowledge the server's SETTINGS as a real client would.
        if (f.type === T.SETTINGS && !(f.flags & F.ACK) && !s.destroyed) s.write(frame(T.SETTINGS, F.ACK, 0));
      }
      this.notify();
    });
    s.on('close', () => {
      this.closed = true;
      this.notify();
    });
  }
  get sock() {
    return this._sock;
  }
  notify() {
    for (const w of this.waiters.splice(0)) w();
  }
  write(b) {
    if (!this._sock.destroyed) this._sock.write(b);
  }
  // Wait until pred() holds or the connection closes, at most ms.
  until(pred, ms = 10000) {
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(pred()), ms);
      const check = () => {
        if (pred() || this.closed) {
          clearTimeout(t);
          resolve(pred());
        } else this.waiters.push(check);
      };
      check();
    });
  }
  goaway() {
    const g = this.frames.find((f) => f.type === T.GOAWAY);
    return g ? { last: g.payload.readUInt32BE(0) & 0x7fffffff, code: g.payload.readUInt32BE(4) } : null;
  }
  rst(stream) {
    const r = this.frames.find((f) => f.type === T.RST_STREAM && f.stream === stream);
    return r ? r.payload.readUInt32BE(0) : null;
  }
  close() {
    this._sock.destroy();
  }
}

// Protobuf helpers: just enough to hand-build the requests.
export function varint(n) {
  const out = [];
  while (n >= 128) {
    out.push((n % 128) + 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}
export function ld(field, bytes) {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  return Buffer.concat([varint((field << 3) | 2), varint(b.length), b]);
}
export const putReq = (name, value, extra = Buffer.alloc(0)) =>
  Buffer.concat([ld(1, ld(1, name)), ld(2, value), extra]);
export const accessReq = (name, version, extra = Buffer.alloc(0)) =>
  Buffer.concat([ld(1, Buffer.concat([ld(1, ld(1, name)), ld(2, version)])), extra]);
export function grpcMsg(body, flag = 0, declared = body.length) {
  const h = Buffer.alloc(5);
  h[0] = flag;
  h.writeUInt32BE(declared, 1);
  return Buffer.concat([h, body]);
}
