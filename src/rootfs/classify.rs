//! Content classification: wasm header, and a streaming section scanner that finds whether a
//! core module exports `_start` without buffering anything but the export section.

use wasmparser::{BinaryReader, ExportSectionReader, ExternalKind};

/// The four magic bytes of every wasm binary.
pub(crate) const WASM_MAGIC: [u8; 4] = *b"\0asm";
/// Version field of a core module (version 1, layer 0).
const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];
/// Version field of a component (version 0x0d, layer 1).
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0, 1, 0];
/// Length of the wasm header (magic + version).
pub(crate) const HEADER_LEN: usize = 8;
/// Export sections larger than this are rejected rather than buffered.
const MAX_EXPORT_SECTION: u32 = 256 << 20;

/// What the first bytes of a file say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Header {
    /// Core wasm module (to be scanned further).
    CoreModule,
    /// Component-model binary.
    Component,
    /// Wasm magic, but an unsupported version or a truncated header.
    InvalidWasm(String),
    /// Executable starting with `#!`.
    Script,
    /// Any other executable.
    Native,
    /// A non-executable, non-wasm file.
    Data,
}

/// Classifies a file from its first bytes. `head` holds the first [`HEADER_LEN`] bytes of the
/// file, or the whole file if it is shorter.
pub(crate) fn classify_header(head: &[u8], executable: bool) -> Header {
    if head.starts_with(&WASM_MAGIC) {
        let Some(version) = head.get(4..HEADER_LEN) else {
            return Header::InvalidWasm(format!(
                "truncated header: file is only {} bytes long",
                head.len()
            ));
        };
        return if version == CORE_VERSION {
            Header::CoreModule
        } else if version == COMPONENT_VERSION {
            Header::Component
        } else {
            Header::InvalidWasm(format!(
                "unsupported version/layer bytes {}",
                version
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
        };
    }
    if !executable {
        Header::Data
    } else if head.starts_with(b"#!") {
        Header::Script
    } else {
        Header::Native
    }
}

/// Kind of a (structurally valid) core module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModuleKind {
    /// Exports a `_start` function.
    Command,
    /// Does not export `_start`.
    Reactor,
}

#[derive(Debug)]
enum State {
    /// Expecting a section id byte.
    SectionId,
    /// Reading the LEB128 section size.
    SectionSize {
        id: u8,
        start: u64,
        value: u32,
        shift: u32,
    },
    /// Skipping a section's payload.
    Skip { start: u64, remaining: u64 },
    /// Buffering the export section's payload.
    Export {
        start: u64,
        payload_offset: u64,
        size: usize,
        buf: Vec<u8>,
    },
}

/// Push-based scanner over the sections of a core module (after its 8-byte header).
///
/// Checks the section framing (ids, sizes, ordering, truncation) over the whole file, and parses
/// the export section with wasmparser. Bytes are fed in arbitrary chunks; the result does not
/// depend on how the input is split.
#[derive(Debug)]
pub(crate) struct ModuleScanner {
    state: State,
    /// Absolute offset of the next byte to be fed.
    offset: u64,
    /// Order rank of the last non-custom section seen (0 before any).
    last_rank: u8,
    /// `Some(has_start)` once the export section has been parsed.
    exports: Option<bool>,
}

/// Position of each known section id in the required order, `None` for unknown ids. Custom
/// sections (id 0) may appear anywhere and have rank 0.
fn section_rank(id: u8) -> Option<u8> {
    Some(match id {
        0 => 0,
        1 => 1,   // type
        2 => 2,   // import
        3 => 3,   // function
        4 => 4,   // table
        5 => 5,   // memory
        13 => 6,  // tag
        6 => 7,   // global
        7 => 8,   // export
        8 => 9,   // start
        9 => 10,  // element
        12 => 11, // data count
        10 => 12, // code
        11 => 13, // data
        _ => return None,
    })
}

const CUSTOM_ID: u8 = 0;
const EXPORT_ID: u8 = 7;
const EXPORT_RANK: u8 = 8;

impl ModuleScanner {
    /// A scanner positioned right after the wasm header.
    pub(crate) fn new() -> Self {
        ModuleScanner {
            state: State::SectionId,
            offset: HEADER_LEN as u64,
            last_rank: 0,
            exports: None,
        }
    }

    /// Whether the module is already known not to export `_start` (so reading can stop).
    pub(crate) fn known_reactor(&self) -> bool {
        self.exports == Some(false) || (self.exports.is_none() && self.last_rank > EXPORT_RANK)
    }

    /// Feeds the next bytes of the module. Returns an error message if the module is malformed.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            match &mut self.state {
                State::SectionId => {
                    let id = data[0];
                    let start = self.offset;
                    self.advance(&mut data, 1);
                    let rank = section_rank(id)
                        .ok_or_else(|| format!("unknown section id {id} at offset {start:#x}"))?;
                    if rank != 0 {
                        if rank <= self.last_rank {
                            return Err(format!(
                                "section id {id} at offset {start:#x} is out of order or duplicated"
                            ));
                        }
                        self.last_rank = rank;
                    }
                    self.state = State::SectionSize {
                        id,
                        start,
                        value: 0,
                        shift: 0,
                    };
                }
                State::SectionSize {
                    id,
                    start,
                    value,
                    shift,
                } => {
                    let byte = data[0];
                    let (id, start) = (*id, *start);
                    if *shift == 28 && byte > 0x0f {
                        return Err(format!(
                            "invalid size of section at offset {start:#x} (LEB128 overflow)"
                        ));
                    }
                    *value |= u32::from(byte & 0x7f) << *shift;
                    *shift += 7;
                    let size = *value;
                    self.advance(&mut data, 1);
                    if byte & 0x80 == 0 {
                        self.begin_payload(id, start, size)?;
                    }
                }
                State::Skip { remaining, .. } => {
                    let n = usize::try_from(*remaining).map_or(data.len(), |r| r.min(data.len()));
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::SectionId;
                    }
                    self.advance(&mut data, n);
                }
                State::Export { size, buf, .. } => {
                    let n = (*size - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..n]);
                    let complete = buf.len() == *size;
                    self.advance(&mut data, n);
                    if complete {
                        self.finish_export()?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Signals the end of the file and returns the module's kind.
    pub(crate) fn finish(self) -> Result<ModuleKind, String> {
        match self.state {
            State::SectionId => {}
            State::SectionSize { start, .. } => {
                return Err(format!(
                    "unexpected end of file in the header of the section at offset {start:#x}"
                ))
            }
            State::Skip { start, .. } | State::Export { start, .. } => {
                return Err(format!(
                    "unexpected end of file inside the section at offset {start:#x}"
                ))
            }
        }
        Ok(if self.exports == Some(true) {
            ModuleKind::Command
        } else {
            ModuleKind::Reactor
        })
    }

    fn advance(&mut self, data: &mut &[u8], n: usize) {
        *data = &data[n..];
        self.offset += n as u64;
    }

    fn begin_payload(&mut self, id: u8, start: u64, size: u32) -> Result<(), String> {
        if id == CUSTOM_ID && size == 0 {
            return Err(format!(
                "custom section at offset {start:#x} is empty: it must hold at least its name"
            ));
        }
        if id == EXPORT_ID {
            if size > MAX_EXPORT_SECTION {
                return Err(format!(
                    "export section at offset {start:#x} is unreasonably large ({size} bytes)"
                ));
            }
            let size = size as usize;
            self.state = State::Export {
                start,
                payload_offset: self.offset,
                size,
                buf: Vec::with_capacity(size.min(1 << 20)),
            };
            if size == 0 {
                self.finish_export()?;
            }
        } else if size == 0 {
            self.state = State::SectionId;
        } else {
            self.state = State::Skip {
                start,
                remaining: u64::from(size),
            };
        }
        Ok(())
    }

    fn finish_export(&mut self) -> Result<(), String> {
        let state = std::mem::replace(&mut self.state, State::SectionId);
        if let State::Export {
            payload_offset,
            buf,
            ..
        } = state
        {
            self.exports = Some(exports_start(&buf, payload_offset)?);
        }
        Ok(())
    }
}

/// Parses an export section payload; returns whether it exports a `_start` function.
fn exports_start(payload: &[u8], offset: u64) -> Result<bool, String> {
    let offset = usize::try_from(offset).unwrap_or(usize::MAX / 2);
    let reader =
        ExportSectionReader::new(BinaryReader::new(payload, offset)).map_err(|e| e.to_string())?;
    let mut has_start = false;
    for export in reader {
        let export = export.map_err(|e| e.to_string())?;
        if export.name == megabin_format::names::START_EXPORT {
            if export.kind != ExternalKind::Func {
                return Err("the `_start` export is not a function".to_string());
            }
            has_start = true;
        }
    }
    Ok(has_start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{ExportKind, ExportSection, MemorySection, MemoryType, Module};

    /// A module with one function exported under each of `exports`, plus a custom section of
    /// `custom` bytes placed before the export section.
    fn module(exports: &[&str], custom: usize) -> Vec<u8> {
        super::super::tests::module_with(exports, 0, custom, 0)
    }

    fn scan_chunks(bytes: &[u8], chunk: usize) -> Result<ModuleKind, String> {
        assert_eq!(
            classify_header(&bytes[..HEADER_LEN], false),
            Header::CoreModule
        );
        let mut s = ModuleScanner::new();
        for c in bytes[HEADER_LEN..].chunks(chunk) {
            s.feed(c)?;
        }
        s.finish()
    }

    fn scan_all_ways(bytes: &[u8]) -> Result<ModuleKind, String> {
        let whole = scan_chunks(bytes, usize::MAX);
        for chunk in [1, 2, 3, 7, 64] {
            assert_eq!(scan_chunks(bytes, chunk), whole, "chunk size {chunk}");
        }
        whole
    }

    #[test]
    fn headers() {
        assert_eq!(
            classify_header(b"\0asm\x01\0\0\0", false),
            Header::CoreModule
        );
        assert_eq!(
            classify_header(b"\0asm\x0d\0\x01\0", true),
            Header::Component
        );
        assert!(matches!(
            classify_header(b"\0asm\x01", true),
            Header::InvalidWasm(_)
        ));
        assert!(matches!(
            classify_header(b"\0asm\x02\0\0\0", false),
            Header::InvalidWasm(m) if m.contains("02 00 00 00")
        ));
        assert_eq!(classify_header(b"#!/bin/sh", true), Header::Script);
        assert_eq!(classify_header(b"#!/bin/sh", false), Header::Data);
        assert_eq!(
            classify_header(b"\x7fELF\x02\x01\x01\0", true),
            Header::Native
        );
        assert_eq!(classify_header(b"", true), Header::Native);
        assert_eq!(classify_header(b"\x7fELF", false), Header::Data);
    }

    #[test]
    fn command_and_reactor() {
        assert_eq!(
            scan_all_ways(&module(&["_start"], 0)),
            Ok(ModuleKind::Command)
        );
        assert_eq!(
            scan_all_ways(&module(&["memory_x", "_start"], 100)),
            Ok(ModuleKind::Command)
        );
        assert_eq!(
            scan_all_ways(&module(&["_initialize"], 0)),
            Ok(ModuleKind::Reactor)
        );
        assert_eq!(scan_all_ways(&module(&[], 0)), Ok(ModuleKind::Reactor));
        // No export section at all.
        assert_eq!(scan_all_ways(b"\0asm\x01\0\0\0"), Ok(ModuleKind::Reactor));
    }

    #[test]
    fn reactor_is_known_early() {
        let bytes = module(&["_initialize"], 0);
        let mut s = ModuleScanner::new();
        let mut known_at = None;
        for (i, b) in bytes[HEADER_LEN..].iter().enumerate() {
            s.feed(&[*b]).unwrap();
            if s.known_reactor() {
                known_at = Some(i);
                break;
            }
        }
        assert!(known_at.is_some_and(|i| i + HEADER_LEN < bytes.len()));
    }

    #[test]
    fn start_must_be_a_function() {
        let mut m = Module::new();
        let mut mem = MemorySection::new();
        mem.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        m.section(&mem);
        let mut ex = ExportSection::new();
        ex.export("_start", ExportKind::Memory, 0);
        m.section(&ex);
        let err = scan_all_ways(&m.finish()).unwrap_err();
        assert!(err.contains("not a function"), "{err}");
    }

    #[test]
    fn malformed_modules() {
        let good = module(&["_start"], 0);
        // Truncated anywhere after the header: an error, unless the cut falls on one of the
        // four section boundaries. Never an error where wasmparser sees none.
        let mut accepted = 0;
        for len in HEADER_LEN + 1..good.len() {
            let prefix = &good[..len];
            let parses = wasmparser::Parser::new(0)
                .parse_all(prefix)
                .all(|payload| payload.is_ok());
            match scan_all_ways(prefix) {
                Ok(_) => accepted += 1,
                Err(e) => assert!(!parses, "truncated at {len}: {e}"),
            }
        }
        assert!(accepted <= 3, "{accepted}");
        // Garbage section id.
        let mut bad = b"\0asm\x01\0\0\0".to_vec();
        bad.extend_from_slice(&[0xff, 0x01, 0x02]);
        assert!(scan_all_ways(&bad)
            .unwrap_err()
            .contains("unknown section id 255"));
        // Export section whose count promises more than it holds.
        let mut bad = b"\0asm\x01\0\0\0".to_vec();
        bad.extend_from_slice(&[7, 1, 5]);
        assert!(scan_all_ways(&bad).is_err());
        // Trailing bytes inside the export section.
        let mut bad = b"\0asm\x01\0\0\0".to_vec();
        bad.extend_from_slice(&[7, 2, 0, 0]);
        assert!(scan_all_ways(&bad).unwrap_err().contains("size mismatch"));
        // Empty export section payload.
        let mut bad = b"\0asm\x01\0\0\0".to_vec();
        bad.extend_from_slice(&[7, 0]);
        assert!(scan_all_ways(&bad).is_err());
        // Custom section without even its name (wasmparser rejects it too).
        let mut bad = b"\0asm\x01\0\0\0".to_vec();
        bad.extend_from_slice(&[0, 0]);
        assert!(wasmparser::Parser::new(0)
            .parse_all(&bad)
            .any(|payload| payload.is_err()));
        assert!(scan_all_ways(&bad).unwrap_err().contains("is empty"));
        // Duplicate / out-of-order sections.
        let mut bad = b"\0asm\x01\0\0\0".to_vec();
        bad.extend_from_slice(&[7, 1, 0, 1, 1, 0]);
        assert!(scan_all_ways(&bad).unwrap_err().contains("out of order"));
        // Section size LEB128 overflow.
        let mut bad = b"\0asm\x01\0\0\0".to_vec();
        bad.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(scan_all_ways(&bad).unwrap_err().contains("LEB128"));
    }

    #[test]
    fn large_custom_section_and_export_section() {
        let big = module(&["_start"], 3 << 20);
        assert_eq!(scan_chunks(&big, 256 << 10), Ok(ModuleKind::Command));
        let names: Vec<String> = (0..40_000).map(|i| format!("export_{i}")).collect();
        let mut refs: Vec<&str> = names.iter().map(String::as_str).collect();
        refs.push("_start");
        let many = module(&refs, 0);
        assert!(many.len() > 300_000);
        assert_eq!(scan_chunks(&many, 64 << 10), Ok(ModuleKind::Command));
        assert_eq!(scan_chunks(&many, 1000), Ok(ModuleKind::Command));
    }
}
