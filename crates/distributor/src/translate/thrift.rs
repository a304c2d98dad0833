//! A reader of Apache Thrift's binary and compact protocols into a generic value tree, for the
//! Jaeger (and Zipkin v1) Thrift receivers. Untrusted input: every length is checked against the
//! bytes left before anything is allocated, nesting is capped at [`MAX_DEPTH`], and any
//! malformed byte is an error, never a panic.
//!
//! Binary protocol: a field is `type:u8 id:i16be value`, a struct ends with type 0; i16/i32/i64
//! big-endian, double big-endian, binary `len:i32be bytes`, list/set `elem:u8 size:i32be`, map
//! `key:u8 value:u8 size:i32be`. A message starts with `0x8001_00TT name:binary seq:i32be` (or the
//! old `name:binary type:u8 seq:i32be`).
//!
//! Compact protocol: a field header byte holds the id delta (high nibble; 0 = a zigzag varint id
//! follows) and the type (low nibble: 1 true, 2 false, 3 byte, 4 i16, 5 i32, 6 i64, 7 double,
//! 8 binary, 9 list, 10 set, 11 map, 12 struct); integers are zigzag varints, doubles 8 bytes
//! little-endian, binary `len:varint bytes`, list/set `size<<4|elem` (size 15 = varint follows),
//! map `size:varint` then `key<<4|value` when not empty. A message starts with `0x82`,
//! `type<<5|1`, `seq:varint`, `name:binary`.

/// Deepest nesting of structs and containers accepted.
pub const MAX_DEPTH: usize = 64;

/// A decoded Thrift value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    Double(f64),
    Binary(Vec<u8>),
    Struct(Vec<(i16, Value)>),
    List(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// A struct's field.
    pub fn field(&self, id: i16) -> Option<&Value> {
        match self {
            Value::Struct(fields) => fields.iter().find(|(i, _)| *i == id).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::I64(v) => Some(*v),
            Value::I32(v) => Some(i64::from(*v)),
            Value::I16(v) => Some(i64::from(*v)),
            Value::I8(v) => Some(i64::from(*v)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Binary(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub fn as_list(&self) -> &[Value] {
        match self {
            Value::List(v) => v,
            _ => &[],
        }
    }
}

/// The protocol of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Binary,
    Compact,
}

/// A Thrift message: the method name and its arguments struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub name: String,
    /// 1 call, 2 reply, 3 exception, 4 oneway.
    pub kind: u8,
    pub seq: i32,
    pub args: Value,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    protocol: Protocol,
}

type R<T> = Result<T, String>;

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if n > self.left() {
            return Err(format!(
                "truncated: {n} bytes wanted at offset {}",
                self.pos
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> R<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn zigzag(&mut self) -> R<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn be_i32(&mut self) -> R<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn size(&mut self, n: i64, min_elem_bytes: usize) -> R<usize> {
        if n < 0 {
            return Err(format!("negative size {n}"));
        }
        let n = n as usize;
        // Every element takes at least one byte: a size past the bytes left is a lie.
        if n.saturating_mul(min_elem_bytes.max(1)) > self.left() {
            return Err(format!("size {n} exceeds the {} bytes left", self.left()));
        }
        Ok(n)
    }

    fn binary(&mut self) -> R<Vec<u8>> {
        let len = match self.protocol {
            Protocol::Binary => i64::from(self.be_i32()?),
            Protocol::Compact => self.varint()? as i64,
        };
        if len < 0 || len as usize > self.left() {
            return Err(format!(
                "binary of {len} bytes exceeds the {} bytes left",
                self.left()
            ));
        }
        Ok(self.take(len as usize)?.to_vec())
    }

    /// A value of wire type `t` (binary protocol type ids; compact ids are mapped first).
    fn value(&mut self, t: u8, depth: usize) -> R<Value> {
        if depth > MAX_DEPTH {
            return Err("nesting too deep".into());
        }
        Ok(match (self.protocol, t) {
            (Protocol::Binary, 2) => Value::Bool(self.u8()? != 0),
            (Protocol::Binary, 3) => Value::I8(self.u8()? as i8),
            (Protocol::Binary, 4) => {
                let b = self.take(8)?;
                Value::Double(f64::from_be_bytes(b.try_into().map_err(|_| "double")?))
            }
            (Protocol::Binary, 6) => {
                let b = self.take(2)?;
                Value::I16(i16::from_be_bytes([b[0], b[1]]))
            }
            (Protocol::Binary, 8) => Value::I32(self.be_i32()?),
            (Protocol::Binary, 10) => {
                let b = self.take(8)?;
                Value::I64(i64::from_be_bytes(b.try_into().map_err(|_| "i64")?))
            }
            (Protocol::Binary, 11) => Value::Binary(self.binary()?),
            (Protocol::Binary, 12) => self.structure(depth + 1)?,
            (Protocol::Binary, 13) => {
                let (kt, vt) = (self.u8()?, self.u8()?);
                let n = i64::from(self.be_i32()?);
                let n = self.size(n, 2)?;
                let mut m = Vec::with_capacity(n);
                for _ in 0..n {
                    m.push((self.value(kt, depth + 1)?, self.value(vt, depth + 1)?));
                }
                Value::Map(m)
            }
            (Protocol::Binary, 14 | 15) => {
                let et = self.u8()?;
                let n = i64::from(self.be_i32()?);
                let n = self.size(n, 1)?;
                let mut l = Vec::with_capacity(n);
                for _ in 0..n {
                    l.push(self.value(et, depth + 1)?);
                }
                Value::List(l)
            }
            (Protocol::Compact, 1) => Value::Bool(true),
            (Protocol::Compact, 2) => Value::Bool(false),
            (Protocol::Compact, 3) => Value::I8(self.u8()? as i8),
            (Protocol::Compact, 4) => Value::I16(self.zigzag()? as i16),
            (Protocol::Compact, 5) => Value::I32(self.zigzag()? as i32),
            (Protocol::Compact, 6) => Value::I64(self.zigzag()?),
            (Protocol::Compact, 7) => {
                let b = self.take(8)?;
                Value::Double(f64::from_le_bytes(b.try_into().map_err(|_| "double")?))
            }
            (Protocol::Compact, 8) => Value::Binary(self.binary()?),
            (Protocol::Compact, 9 | 10) => {
                let h = self.u8()?;
                let mut n = i64::from(h >> 4);
                if n == 15 {
                    n = self.varint()? as i64;
                }
                let n = self.size(n, 1)?;
                let et = h & 0x0f;
                let mut l = Vec::with_capacity(n);
                for _ in 0..n {
                    // Booleans in containers take a byte each: 1 is true.
                    if et == 1 || et == 2 {
                        l.push(Value::Bool(self.u8()? == 1));
                    } else {
                        l.push(self.value(et, depth + 1)?);
                    }
                }
                Value::List(l)
            }
            (Protocol::Compact, 11) => {
                let n = self.varint()? as i64;
                let n = self.size(n, 2)?;
                if n == 0 {
                    return Ok(Value::Map(Vec::new()));
                }
                let kv = self.u8()?;
                let (kt, vt) = (kv >> 4, kv & 0x0f);
                let mut m = Vec::with_capacity(n);
                let bool_or = |r: &mut Self, t: u8| -> R<Value> {
                    if t == 1 || t == 2 {
                        Ok(Value::Bool(r.u8()? == 1))
                    } else {
                        r.value(t, depth + 1)
                    }
                };
                for _ in 0..n {
                    m.push((bool_or(self, kt)?, bool_or(self, vt)?));
                }
                Value::Map(m)
            }
            (Protocol::Compact, 12) => self.structure(depth + 1)?,
            (_, t) => return Err(format!("unknown field type {t} at offset {}", self.pos)),
        })
    }

    fn structure(&mut self, depth: usize) -> R<Value> {
        if depth > MAX_DEPTH {
            return Err("nesting too deep".into());
        }
        let mut fields = Vec::new();
        let mut last_id = 0i16;
        loop {
            match self.protocol {
                Protocol::Binary => {
                    let t = self.u8()?;
                    if t == 0 {
                        break;
                    }
                    let b = self.take(2)?;
                    let id = i16::from_be_bytes([b[0], b[1]]);
                    fields.push((id, self.value(t, depth)?));
                }
                Protocol::Compact => {
                    let h = self.u8()?;
                    if h == 0 {
                        break;
                    }
                    let t = h & 0x0f;
                    let delta = h >> 4;
                    let id = if delta == 0 {
                        self.zigzag()? as i16
                    } else {
                        last_id.wrapping_add(i16::from(delta))
                    };
                    last_id = id;
                    fields.push((id, self.value(t, depth)?));
                }
            }
        }
        Ok(Value::Struct(fields))
    }
}

/// Reads one struct (the whole payload of a Jaeger collector HTTP body).
pub fn read_struct(buf: &[u8], protocol: Protocol) -> Result<Value, String> {
    let mut r = Reader {
        buf,
        pos: 0,
        protocol,
    };
    r.structure(1)
}

/// Reads one list (the body of Zipkin's v1 Thrift `/api/v1/spans`: a `list<Span>`).
pub fn read_list(buf: &[u8], protocol: Protocol) -> Result<Value, String> {
    let mut r = Reader {
        buf,
        pos: 0,
        protocol,
    };
    let t = match protocol {
        Protocol::Binary => 15,
        Protocol::Compact => 9,
    };
    r.value(t, 1)
}

/// Reads a message (an agent UDP datagram), telling the protocol from its first byte.
pub fn read_message(buf: &[u8]) -> Result<(Protocol, Message), String> {
    let protocol = match buf.first() {
        Some(0x82) => Protocol::Compact,
        Some(_) => Protocol::Binary,
        None => return Err("empty message".into()),
    };
    let mut r = Reader {
        buf,
        pos: 0,
        protocol,
    };
    let (name, kind, seq) = match protocol {
        Protocol::Compact => {
            r.u8()?;
            let vt = r.u8()?;
            if vt & 0x1f != 1 {
                return Err(format!("unknown compact protocol version {}", vt & 0x1f));
            }
            let seq = r.varint()? as i32;
            let name = r.binary()?;
            (name, vt >> 5, seq)
        }
        Protocol::Binary => {
            let first = r.be_i32()?;
            if first < 0 {
                if (first as u32) & 0xffff_0000 != 0x8001_0000 {
                    return Err("bad binary protocol version".into());
                }
                let name = r.binary()?;
                let seq = r.be_i32()?;
                (name, (first & 0xff) as u8, seq)
            } else {
                let len = first as usize;
                let name = r.take(len)?.to_vec();
                let kind = r.u8()?;
                let seq = r.be_i32()?;
                (name, kind, seq)
            }
        }
    };
    let args = r.structure(1)?;
    Ok((
        protocol,
        Message {
            name: String::from_utf8_lossy(&name).into_owned(),
            kind,
            seq,
            args,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_binary_structs() {
        // Compact: field 1 i64 = -2 (zigzag 3), field 2 binary "hi", field 5 list<i32> [1, 2],
        // field 6 true.
        let compact = [
            0x16, 0x03, 0x18, 0x02, b'h', b'i', 0x39, 0x25, 0x02, 0x04, 0x11, 0x00,
        ];
        let v = read_struct(&compact, Protocol::Compact).unwrap();
        assert_eq!(v.field(1), Some(&Value::I64(-2)));
        assert_eq!(v.field(2).and_then(Value::as_str), Some("hi"));
        assert_eq!(v.field(5).map(Value::as_list).map(<[Value]>::len), Some(2));
        assert_eq!(v.field(6), Some(&Value::Bool(true)));
        // Binary: field 3 i32 = 7, field 4 string "ab".
        let binary = [8, 0, 3, 0, 0, 0, 7, 11, 0, 4, 0, 0, 0, 2, b'a', b'b', 0];
        let v = read_struct(&binary, Protocol::Binary).unwrap();
        assert_eq!(v.field(3).and_then(Value::as_i64), Some(7));
        assert_eq!(v.field(4).and_then(Value::as_str), Some("ab"));
    }

    #[test]
    fn lies_and_garbage_are_errors_not_panics() {
        // A list claiming 2^31 elements in a few bytes.
        let lie = [15, 0, 1, 8, 0x7f, 0xff, 0xff, 0xff, 0];
        assert!(read_struct(&lie, Protocol::Binary).is_err());
        // Deep nesting.
        let deep = vec![0x1c; 10_000];
        assert!(read_struct(&deep, Protocol::Compact).is_err());
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..2000 {
            let bytes: Vec<u8> = (0..len % 97)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = read_struct(&bytes, Protocol::Compact);
            let _ = read_struct(&bytes, Protocol::Binary);
            let _ = read_message(&bytes);
        }
    }
}
