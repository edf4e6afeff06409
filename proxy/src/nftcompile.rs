//! Incremental updates ([`Op`]s) compiled into nf_tables netlink messages,
//! the bytecode `nft` 1.0.6 itself generates for the same text (compare
//! `nft --debug=netlink`), so the kernel holds the very same rules
//! whichever path wrote them.
//!
//! Only the rule forms [`crate::nftrules`] renders are understood:
//! matches on `ip saddr` (address, prefix, `@set`), `meta l4proto` and
//! `fib saddr type local`, then `jump`/`goto`/`drop`, `dnat to A:P`,
//! `dnat to numgen random mod N map { … }`, `update @set { ip saddr }` or
//! a `numgen random mod N vmap { … }`.
//! Anything else is a [`CompileError`], and the caller uses `nft -f`.

use std::net::Ipv4Addr;

use crate::netlink::{Batch, FAMILY_IP, Msg, NLM_F_APPEND, NLM_F_CREATE};
use crate::nftproxier::Op;

// nf_tables message types and attributes (linux/netfilter/nf_tables.h).
const DELTABLE: u16 = 2;
const NEWCHAIN: u16 = 3;
const DELCHAIN: u16 = 5;
const NEWRULE: u16 = 6;
const DELRULE: u16 = 8;
const NEWSET: u16 = 9;
const DELSET: u16 = 11;
const NEWSETELEM: u16 = 12;
const DELSETELEM: u16 = 14;
// Every object's first attribute is its table; chains and sets are named
// by attribute 3 and 2, a rule's chain is attribute 2.
const A_TABLE: u16 = 1;
const CHAIN_NAME: u16 = 3;
const RULE_CHAIN: u16 = 2;
const RULE_EXPRESSIONS: u16 = 4;
const LIST_ELEM: u16 = 1;
const EXPR_NAME: u16 = 1;
const EXPR_DATA: u16 = 2;
const SET_NAME: u16 = 2;
const SET_FLAGS: u16 = 3;
const SET_KEY_TYPE: u16 = 4;
const SET_KEY_LEN: u16 = 5;
const SET_DATA_TYPE: u16 = 6;
const SET_DATA_LEN: u16 = 7;
const SET_DESC: u16 = 9;
const SET_DESC_SIZE: u16 = 1;
const SET_ID: u16 = 10;
const SET_TIMEOUT: u16 = 11;
const SET_USERDATA: u16 = 13;
const ELEM_LIST_SET: u16 = 2;
const ELEM_LIST_ELEMENTS: u16 = 3;
const ELEM_LIST_SET_ID: u16 = 4;
const ELEM_KEY: u16 = 1;
const ELEM_DATA: u16 = 2;
const DATA_VALUE: u16 = 1;
const DATA_VERDICT: u16 = 2;
const VERDICT_CODE: u16 = 1;
const VERDICT_CHAIN: u16 = 2;
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
const NF_DROP: i32 = 0;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;
/// The second 32-bit register of register 1, where a concatenation's
/// second part lands.
const REG32_01: u32 = 9;
const SET_ANONYMOUS: u32 = 0x1;
const SET_CONSTANT: u32 = 0x2;
const SET_MAP: u32 = 0x8;
const SET_TIMEOUT_FLAG: u32 = 0x10;
const SET_EVAL: u32 = 0x20;
/// nft's datatype ids, kept in the set for `nft list`.
const TYPE_INTEGER: u32 = 4;
const TYPE_IPADDR: u32 = 7;
/// `ipv4_addr . inet_service` (nft's concatenated type: 7 << 6 | 13).
const TYPE_ADDR_PORT: u32 = 461;
const RTN_LOCAL: u32 = 2;
/// nft's set user data (libnftnl's `NFTNL_UDATA_SET_*` TLVs), byte for
/// byte as nft 1.0.6 writes it: an anonymous `numgen` vmap (key in host
/// byte order, key typeof `numgen`) and an `ipv4_addr` set (big-endian key).
const NUMGEN_MAP_USERDATA: [u8; 28] = [
    0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x04, 0x08, 0x00, 0x04,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00,
];
const IPV4_SET_USERDATA: [u8; 6] = [0x00, 0x04, 0x02, 0x00, 0x00, 0x00];
/// The anonymous `numgen` map of a `dnat to numgen … map`.
const NUMGEN_DNAT_MAP_USERDATA: [u8; 18] = [
    0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x06, 0x04, 0x00, 0x00,
    0x00, 0x00,
];

#[derive(Debug, thiserror::Error)]
#[error("cannot compile `{0}` into netlink messages")]
pub struct CompileError(String);

/// The batch applying `ops`, each to the `ip` table named with it.
pub fn compile<'a>(
    ops: impl IntoIterator<Item = (&'a str, &'a Op)>,
) -> Result<Batch, CompileError> {
    let mut c = Compiler {
        table: "",
        batch: Batch::default(),
        next_set_id: 1,
    };
    for (table, op) in ops {
        c.table = table;
        c.op(op)?;
    }
    Ok(c.batch)
}

struct Compiler<'a> {
    table: &'a str,
    batch: Batch,
    /// Ids naming anonymous sets within the transaction.
    next_set_id: u32,
}

impl Compiler<'_> {
    fn msg(&self, kind: u16, flags: u16) -> Msg {
        let mut m = Msg::new(kind, flags, FAMILY_IP);
        m.str(A_TABLE, self.table);
        m
    }

    fn op(&mut self, op: &Op) -> Result<(), CompileError> {
        let what = format!("{op:?}");
        let m = match op {
            Op::AddChain(name) => {
                let mut m = self.msg(NEWCHAIN, NLM_F_CREATE);
                m.str(CHAIN_NAME, name);
                m
            }
            Op::DeleteTable => self.msg(DELTABLE, 0),
            Op::DeleteChain(name) => {
                let mut m = self.msg(DELCHAIN, 0);
                m.str(CHAIN_NAME, name);
                m
            }
            Op::FlushChain(name) => {
                let mut m = self.msg(DELRULE, 0);
                m.str(RULE_CHAIN, name);
                m
            }
            Op::AddSet { name, timeout } => {
                let ms = u64::try_from(*timeout)
                    .map_err(|_| CompileError(what.clone()))?
                    .saturating_mul(1000);
                let id = self.set_id();
                let mut m = self.msg(NEWSET, NLM_F_CREATE);
                m.str(SET_NAME, name)
                    .u32(SET_FLAGS, SET_TIMEOUT_FLAG | SET_EVAL)
                    .u32(SET_KEY_TYPE, TYPE_IPADDR)
                    .u32(SET_KEY_LEN, 4)
                    .u32(SET_ID, id)
                    .u64(SET_TIMEOUT, ms)
                    .bytes(SET_USERDATA, &IPV4_SET_USERDATA);
                m
            }
            Op::DeleteSet(name) => {
                let mut m = self.msg(DELSET, 0);
                m.str(SET_NAME, name);
                m
            }
            Op::AddElement { map, key, verdict } => {
                let key = element_key(key).ok_or_else(|| CompileError(what.clone()))?;
                let (code, chain) =
                    parse_verdict(verdict).ok_or_else(|| CompileError(what.clone()))?;
                let mut m = self.msg(NEWSETELEM, NLM_F_CREATE);
                m.str(ELEM_LIST_SET, map).nest(ELEM_LIST_ELEMENTS);
                element(&mut m, &key, Data::Verdict(code, chain.as_deref()));
                m.end();
                m
            }
            Op::AddMember { set, key } => {
                let key = element_key(key).ok_or_else(|| CompileError(what.clone()))?;
                let mut m = self.msg(NEWSETELEM, NLM_F_CREATE);
                m.str(ELEM_LIST_SET, set).nest(ELEM_LIST_ELEMENTS);
                element(&mut m, &key, Data::None);
                m.end();
                m
            }
            Op::DeleteElement { map, key } => {
                let key = element_key(key).ok_or_else(|| CompileError(what.clone()))?;
                let mut m = self.msg(DELSETELEM, 0);
                m.str(ELEM_LIST_SET, map).nest(ELEM_LIST_ELEMENTS);
                element(&mut m, &key, Data::None);
                m.end();
                m
            }
            Op::AddRule { chain, rule } => {
                let exprs = self.rule(rule).ok_or_else(|| CompileError(what.clone()))?;
                let mut m = self.msg(NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
                m.str(RULE_CHAIN, chain).nest(RULE_EXPRESSIONS);
                for e in exprs {
                    e.encode(&mut m);
                }
                m.end();
                m
            }
        };
        self.batch.push(m, what);
        Ok(())
    }

    fn set_id(&mut self) -> u32 {
        self.next_set_id += 1;
        self.next_set_id - 1
    }

    /// A rule's expressions; a `numgen … vmap` first adds its anonymous
    /// map (and elements) to the batch, as nft does.
    fn rule(&mut self, rule: &str) -> Option<Vec<Expr>> {
        let mut out = Vec::new();
        let mut words = rule.split_whitespace();
        while let Some(word) = words.next() {
            match word {
                "ip" => {
                    if words.next()? != "saddr" {
                        return None;
                    }
                    let value = words.next()?;
                    out.push(Expr::Payload { len: 4, offset: 12 });
                    if let Some(set) = value.strip_prefix('@') {
                        out.push(Expr::Lookup {
                            set: set.to_string(),
                            set_id: None,
                            dreg: None,
                        });
                    } else if let Some((addr, prefix)) = value.split_once('/') {
                        let addr: Ipv4Addr = addr.parse().ok()?;
                        let prefix: u32 = prefix.parse().ok()?;
                        if prefix == 0 || prefix > 32 {
                            return None;
                        }
                        let mask = u32::MAX << (32 - prefix);
                        let net = (u32::from(addr) & mask).to_be_bytes();
                        if prefix.is_multiple_of(8) {
                            // nft loads just the prefix's bytes.
                            let n = (prefix / 8) as usize;
                            out.pop();
                            out.push(Expr::Payload {
                                len: n as u32,
                                offset: 12,
                            });
                            out.push(Expr::Cmp(net[..n].to_vec()));
                        } else {
                            out.push(Expr::Bitwise(mask.to_be_bytes()));
                            out.push(Expr::Cmp(net.to_vec()));
                        }
                    } else {
                        let addr: Ipv4Addr = value.parse().ok()?;
                        out.push(Expr::Cmp(addr.octets().to_vec()));
                    }
                }
                "meta" => {
                    if words.next()? != "l4proto" {
                        return None;
                    }
                    out.push(Expr::MetaL4proto);
                    out.push(Expr::Cmp(vec![proto_number(words.next()?)?]));
                }
                "fib" => {
                    for expected in ["saddr", "type", "local"] {
                        if words.next()? != expected {
                            return None;
                        }
                    }
                    out.push(Expr::FibSaddrType);
                    // The address type is a host-order u32.
                    out.push(Expr::Cmp(RTN_LOCAL.to_ne_bytes().to_vec()));
                }
                "jump" | "goto" => {
                    let code = if word == "jump" { NFT_JUMP } else { NFT_GOTO };
                    out.push(Expr::Verdict(code, Some(words.next()?.to_string())));
                    return words.next().is_none().then_some(out);
                }
                "drop" => {
                    out.push(Expr::Verdict(NF_DROP, None));
                    return words.next().is_none().then_some(out);
                }
                "dnat" => {
                    if words.next()? != "to" {
                        return None;
                    }
                    let target = words.next()?;
                    if target == "numgen" {
                        let (modulus, values) = numgen_values(words.by_ref(), "map")?;
                        let values = values
                            .iter()
                            .map(|v| {
                                let (addr, port) = v.split_once(" . ")?;
                                let addr: Ipv4Addr = addr.parse().ok()?;
                                let port: u16 = port.parse().ok()?;
                                // Two registers: the address, the port padded.
                                let [p0, p1] = port.to_be_bytes();
                                let [a0, a1, a2, a3] = addr.octets();
                                Some(vec![a0, a1, a2, a3, p0, p1, 0, 0])
                            })
                            .collect::<Option<Vec<_>>>()?;
                        let set_id = self.numgen_dnat_map(&values);
                        out.extend(numgen_lookup(modulus, set_id, REG_1));
                        out.push(Expr::DnatMapped);
                        return Some(out);
                    }
                    let (addr, port) = target.split_once(':')?;
                    let addr: Ipv4Addr = addr.parse().ok()?;
                    let port: u16 = port.parse().ok()?;
                    out.push(Expr::Value(REG_1, addr.octets().to_vec()));
                    out.push(Expr::Value(REG_2, port.to_be_bytes().to_vec()));
                    out.push(Expr::Dnat);
                    return words.next().is_none().then_some(out);
                }
                "update" => {
                    let set = words.next()?.strip_prefix('@')?.to_string();
                    let rest: Vec<&str> = words.collect();
                    if rest != ["{", "ip", "saddr", "}"] {
                        return None;
                    }
                    out.push(Expr::Payload { len: 4, offset: 12 });
                    out.push(Expr::DynsetUpdate(set));
                    return Some(out);
                }
                "numgen" => {
                    let (modulus, verdicts) = numgen_values(words.by_ref(), "vmap")?;
                    let targets = verdicts
                        .iter()
                        .map(|v| parse_verdict(v))
                        .collect::<Option<Vec<_>>>()?;
                    let set_id = self.numgen_map(&targets);
                    out.extend(numgen_lookup(modulus, set_id, REG_VERDICT));
                    return Some(out);
                }
                _ => return None,
            }
        }
        // Matches without a statement: nft accepts them, we never render them.
        None
    }

    /// Adds an anonymous constant `numgen` vmap and its elements to the
    /// batch; answers its transaction id.
    fn numgen_map(&mut self, targets: &[(i32, Option<String>)]) -> u32 {
        let data = targets
            .iter()
            .map(|(code, chain)| Data::Verdict(*code, chain.as_deref()));
        let kind = (NFT_DATA_VERDICT, 0, &NUMGEN_MAP_USERDATA[..]);
        self.anonymous_numgen_map("numgen vmap", kind, data.collect())
    }

    /// Adds an anonymous constant `numgen` map to `addr . port` values
    /// (8 bytes each) and its elements; answers its transaction id.
    fn numgen_dnat_map(&mut self, values: &[Vec<u8>]) -> u32 {
        let data = values.iter().map(|v| Data::Value(v));
        let kind = (TYPE_ADDR_PORT, 8, &NUMGEN_DNAT_MAP_USERDATA[..]);
        self.anonymous_numgen_map("numgen dnat map", kind, data.collect())
    }

    /// An anonymous constant map from `numgen`'s result (a host-order u32,
    /// 0 to N-1) to `data`, whose (type, length, set user data) is `kind`.
    fn anonymous_numgen_map(
        &mut self,
        what: &str,
        (data_type, data_len, userdata): (u32, u32, &[u8]),
        data: Vec<Data>,
    ) -> u32 {
        let id = self.set_id();
        let mut set = self.msg(NEWSET, NLM_F_CREATE);
        set.str(SET_NAME, "__map%d")
            .u32(SET_FLAGS, SET_ANONYMOUS | SET_CONSTANT | SET_MAP)
            .u32(SET_KEY_TYPE, TYPE_INTEGER)
            .u32(SET_KEY_LEN, 4)
            .u32(SET_DATA_TYPE, data_type)
            .u32(SET_DATA_LEN, data_len)
            .u32(SET_ID, id)
            .nest(SET_DESC)
            .u32(SET_DESC_SIZE, data.len() as u32)
            .end()
            .bytes(SET_USERDATA, userdata);
        self.batch.push(set, what.into());
        let mut elems = self.msg(NEWSETELEM, NLM_F_CREATE);
        elems
            .str(ELEM_LIST_SET, "__map%d")
            .u32(ELEM_LIST_SET_ID, id)
            .nest(ELEM_LIST_ELEMENTS);
        for (i, d) in data.into_iter().enumerate() {
            element(&mut elems, &(i as u32).to_ne_bytes(), d);
        }
        elems.end();
        self.batch.push(elems, format!("{what} elements"));
        id
    }
}

/// One rule expression, as nft 1.0.6 emits it.
enum Expr {
    /// `ip` header bytes into register 1.
    Payload {
        len: u32,
        offset: u32,
    },
    /// Register 1 equals the bytes.
    Cmp(Vec<u8>),
    /// Register 1 masked (4 bytes, xor 0).
    Bitwise([u8; 4]),
    MetaL4proto,
    FibSaddrType,
    /// An immediate verdict, with its chain for jump/goto.
    Verdict(i32, Option<String>),
    /// An immediate value into a register.
    Value(u32, Vec<u8>),
    /// DNAT to the address in register 1, port in register 2.
    Dnat,
    /// DNAT to the `addr . port` a map lookup left in register 1.
    DnatMapped,
    Lookup {
        set: String,
        set_id: Option<u32>,
        /// A map's destination register (the verdict one for a vmap).
        dreg: Option<u32>,
    },
    DynsetUpdate(String),
    Numgen(u32),
}

impl Expr {
    fn encode(&self, m: &mut Msg) {
        let data = |m: &mut Msg, ty: u16, bytes: &[u8]| {
            m.nest(ty).bytes(DATA_VALUE, bytes).end();
        };
        m.nest(LIST_ELEM);
        match self {
            Expr::Payload { len, offset } => {
                // dreg, base (network header), offset, len
                m.str(EXPR_NAME, "payload")
                    .nest(EXPR_DATA)
                    .u32(1, REG_1)
                    .u32(2, 1)
                    .u32(3, *offset)
                    .u32(4, *len)
                    .end();
            }
            Expr::Cmp(bytes) => {
                // sreg, op (eq), data
                m.str(EXPR_NAME, "cmp")
                    .nest(EXPR_DATA)
                    .u32(1, REG_1)
                    .u32(2, 0);
                data(m, 3, bytes);
                m.end();
            }
            Expr::Bitwise(mask) => {
                // sreg, dreg, len, mask, xor
                m.str(EXPR_NAME, "bitwise")
                    .nest(EXPR_DATA)
                    .u32(1, REG_1)
                    .u32(2, REG_1)
                    .u32(3, 4);
                data(m, 4, mask);
                data(m, 5, &[0; 4]);
                m.end();
            }
            Expr::MetaL4proto => {
                // key (l4proto), dreg
                m.str(EXPR_NAME, "meta")
                    .nest(EXPR_DATA)
                    .u32(2, 16)
                    .u32(1, REG_1)
                    .end();
            }
            Expr::FibSaddrType => {
                // dreg, result (address type), flags (saddr)
                m.str(EXPR_NAME, "fib")
                    .nest(EXPR_DATA)
                    .u32(1, REG_1)
                    .u32(2, 3)
                    .u32(3, 1)
                    .end();
            }
            Expr::Verdict(code, chain) => {
                m.str(EXPR_NAME, "immediate")
                    .nest(EXPR_DATA)
                    .u32(1, REG_VERDICT)
                    .nest(2);
                verdict(m, *code, chain.as_deref());
                m.end().end();
            }
            Expr::Value(reg, bytes) => {
                m.str(EXPR_NAME, "immediate").nest(EXPR_DATA).u32(1, *reg);
                data(m, 2, bytes);
                m.end();
            }
            Expr::Dnat => {
                // type (dnat), family, reg addr min, reg proto min, flags
                // (NF_NAT_RANGE_PROTO_SPECIFIED)
                m.str(EXPR_NAME, "nat")
                    .nest(EXPR_DATA)
                    .u32(1, 1)
                    .u32(2, u32::from(FAMILY_IP))
                    .u32(3, REG_1)
                    .u32(5, REG_2)
                    .u32(7, 2)
                    .end();
            }
            Expr::DnatMapped => {
                // type (dnat), family, reg addr min, reg proto min (the
                // flag follows from the register, as nft leaves it out)
                m.str(EXPR_NAME, "nat")
                    .nest(EXPR_DATA)
                    .u32(1, 1)
                    .u32(2, u32::from(FAMILY_IP))
                    .u32(3, REG_1)
                    .u32(5, REG32_01)
                    .end();
            }
            Expr::Lookup { set, set_id, dreg } => {
                m.str(EXPR_NAME, "lookup")
                    .nest(EXPR_DATA)
                    .str(1, set)
                    .u32(2, REG_1);
                if let Some(dreg) = dreg {
                    m.u32(3, *dreg);
                }
                if let Some(id) = set_id {
                    m.u32(4, *id);
                }
                m.end();
            }
            Expr::DynsetUpdate(set) => {
                // set name, op (update), sreg key
                m.str(EXPR_NAME, "dynset")
                    .nest(EXPR_DATA)
                    .str(1, set)
                    .u32(3, 1)
                    .u32(4, REG_1)
                    .end();
            }
            Expr::Numgen(modulus) => {
                // dreg, modulus, type (random)
                m.str(EXPR_NAME, "numgen")
                    .nest(EXPR_DATA)
                    .u32(1, REG_1)
                    .u32(2, *modulus)
                    .u32(3, 1)
                    .end();
            }
        }
        m.end();
    }
}

fn verdict(m: &mut Msg, code: i32, chain: Option<&str>) {
    m.nest(DATA_VERDICT).u32(VERDICT_CODE, code as u32);
    if let Some(chain) = chain {
        m.str(VERDICT_CHAIN, chain);
    }
    m.end();
}

/// What a set element maps its key to.
enum Data<'a> {
    None,
    Verdict(i32, Option<&'a str>),
    Value(&'a [u8]),
}

/// One element of a set-element list: its key and what it maps to.
fn element(m: &mut Msg, key: &[u8], data: Data) {
    m.nest(LIST_ELEM)
        .nest(ELEM_KEY)
        .bytes(DATA_VALUE, key)
        .end();
    match data {
        Data::None => {}
        Data::Verdict(code, chain) => {
            m.nest(ELEM_DATA);
            verdict(m, code, chain);
            m.end();
        }
        Data::Value(bytes) => {
            m.nest(ELEM_DATA).bytes(DATA_VALUE, bytes).end();
        }
    }
    m.end();
}

/// The values of `random mod N <kind> { 0 : v0, 1 : v1, … }` after
/// `numgen`: keys 0 to N-1 in order, N of them.
fn numgen_values<'a>(
    words: impl Iterator<Item = &'a str>,
    kind: &str,
) -> Option<(u32, Vec<String>)> {
    let words: Vec<&str> = words.collect();
    let ["random", "mod", n, k, rest @ ..] = &words[..] else {
        return None;
    };
    if *k != kind {
        return None;
    }
    let modulus: u32 = n.parse().ok()?;
    let body = rest.join(" ");
    let body = body.strip_prefix("{ ")?.strip_suffix(" }")?;
    let mut values = Vec::new();
    for (i, entry) in body.split(", ").enumerate() {
        let (key, value) = entry.split_once(" : ")?;
        if key.parse::<usize>().ok()? != i {
            return None;
        }
        values.push(value.to_string());
    }
    (values.len() == modulus as usize).then_some((modulus, values))
}

/// `numgen random mod N` into register 1, looked up in the anonymous map
/// `set_id`, its result into `dreg`.
fn numgen_lookup(modulus: u32, set_id: u32, dreg: u32) -> [Expr; 2] {
    [
        Expr::Numgen(modulus),
        Expr::Lookup {
            set: "__map%d".into(),
            set_id: Some(set_id),
            dreg: Some(dreg),
        },
    ]
}

/// `goto CHAIN` / `jump CHAIN` / `drop`.
fn parse_verdict(text: &str) -> Option<(i32, Option<String>)> {
    if text == "drop" {
        return Some((NF_DROP, None));
    }
    let (word, chain) = text.split_once(' ')?;
    let code = match word {
        "goto" => NFT_GOTO,
        "jump" => NFT_JUMP,
        _ => return None,
    };
    (!chain.is_empty() && !chain.contains(' ')).then(|| (code, Some(chain.to_string())))
}

fn proto_number(name: &str) -> Option<u8> {
    match name {
        "tcp" => Some(6),
        "udp" => Some(17),
        "sctp" => Some(132),
        _ => None,
    }
}

/// A concatenated map key (`10.43.0.1 . tcp . 80`, `tcp . 30001`): each
/// part padded to a 4-byte register, as the kernel lays concatenations
/// out; addresses and ports in network order, the protocol one byte.
fn element_key(key: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for part in key.split(" . ") {
        if let Ok(addr) = part.parse::<Ipv4Addr>() {
            out.extend_from_slice(&addr.octets());
        } else if let Some(p) = proto_number(part) {
            out.extend_from_slice(&[p, 0, 0, 0]);
        } else {
            let port: u16 = part.parse().ok()?;
            out.extend_from_slice(&port.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
    }
    Some(out)
}

#[cfg(test)]
#[path = "nftcompile_tests.rs"]
mod tests;
