"""A minimal safetensors reader and writer (no `safetensors` package needed).

The format: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets},
"__metadata__": {str: str}}, then the raw little-endian data of every tensor.
"""
import json
import struct
import sys

import torch

_DTYPES = {
    'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,
    'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8, 'U8': torch.uint8,
    'BOOL': torch.bool,
}
# unsigned types PyTorch 1.13 lacks: read into the next wider signed type
_WIDEN = {'U32': (torch.int32, torch.int64), 'U16': (torch.int16, torch.int32), 'U64': (torch.int64, torch.int64)}
_NAMES = {v: k for k, v in _DTYPES.items()}


def read_safetensors(path_or_bytes):
    """(tensors by name, metadata dict) of a safetensors file (a path or its bytes)."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        buf = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, 'rb') as f:
            buf = f.read()
    if len(buf) < 8:
        raise ValueError('not a safetensors file: shorter than its 8-byte header length')
    (n,) = struct.unpack('<Q', buf[:8])
    if 8 + n > len(buf):
        raise ValueError(f'not a safetensors file: header of {n} bytes beyond the end of the file')
    if sys.byteorder == 'big':
        raise NotImplementedError('reading safetensors on a big-endian machine')
    header = json.loads(buf[8:8 + n].decode('utf-8'))
    metadata = header.pop('__metadata__', None) or {}
    data = buf[8 + n:]
    tensors = {}
    for name, e in header.items():
        begin, end = e['data_offsets']
        shape = list(e['shape'])
        raw = bytearray(data[begin:end])
        dt = e['dtype']
        if dt in _DTYPES:
            t = torch.frombuffer(raw, dtype=_DTYPES[dt]) if raw else torch.empty(0, dtype=_DTYPES[dt])
        elif dt in _WIDEN:
            src, dst = _WIDEN[dt]
            t = torch.frombuffer(raw, dtype=src) if raw else torch.empty(0, dtype=src)
            if dt == 'U64':
                if raw and (t < 0).any():
                    raise ValueError(f'tensor {name!r}: U64 value beyond int64')
            else:
                bits = 32 if dt == 'U32' else 16
                t = t.to(dst) & ((1 << bits) - 1)
        else:
            raise ValueError(f'tensor {name!r} has unknown dtype {dt!r}')
        tensors[name] = t.reshape(shape).clone()
    return tensors, metadata


def _raw(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    if sys.byteorder == 'big':
        raise NotImplementedError('writing safetensors on a big-endian machine')
    return t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b''


def to_safetensors_bytes(tensors, metadata=None):
    """The bytes of a safetensors file of `tensors` (sorted by name) with string `metadata`."""
    header = {}
    if metadata:
        header['__metadata__'] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in _NAMES:
            raise TypeError(f'tensor {name!r}: no safetensors dtype for {t.dtype}')
        b = _raw(t)
        header[name] = {'dtype': _NAMES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    js = json.dumps(header, separators=(',', ':')).encode('utf-8')
    js += b' ' * (-len(js) % 8)
    return struct.pack('<Q', len(js)) + js + b''.join(blobs)


def write_safetensors(path, tensors, metadata=None):
    """Writes `tensors` to `path` atomically (a temp file renamed over it)."""
    import os
    data = to_safetensors_bytes(tensors, metadata)
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)
