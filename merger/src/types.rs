//! The output type section: input rec groups and generated signatures, deduplicated.

use std::collections::HashMap;
use wasm_encoder::{FuncType, SubType, TypeSection, ValType};

/// One rec group of the output.
enum Group {
    Func(FuncType),
    Rec { explicit: bool, types: Vec<SubType> },
}

/// Collects output types, deduplicating plain function types and self-contained rec groups.
#[derive(Default)]
pub struct TypeInterner {
    groups: Vec<Group>,
    len: u32,
    index: HashMap<String, u32>,
}

impl TypeInterner {
    /// Number of types so far (the index the next type gets).
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Interns a plain (final, no supertype) function type.
    pub fn func(&mut self, params: &[ValType], results: &[ValType]) -> u32 {
        let key = format!("f{params:?}->{results:?}");
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.len;
        self.groups.push(Group::Func(FuncType::new(
            params.iter().copied(),
            results.iter().copied(),
        )));
        self.len += 1;
        self.index.insert(key, i);
        i
    }

    /// Adds a rec group whose types were re-encoded assuming they start at [`Self::len`].
    /// `self_contained` says the group refers to no type index at all, so an identical group
    /// elsewhere is the same type and may be reused. Returns the index of its first type.
    pub fn group(&mut self, explicit: bool, types: Vec<SubType>, self_contained: bool) -> u32 {
        if self_contained && !explicit && types.len() == 1 {
            let t = &types[0];
            if let (true, None, wasm_encoder::CompositeInnerType::Func(f)) =
                (t.is_final, t.supertype_idx, &t.composite_type.inner)
            {
                if !t.composite_type.shared
                    && t.composite_type.descriptor.is_none()
                    && t.composite_type.describes.is_none()
                {
                    return self.func(f.params(), f.results());
                }
            }
        }
        let key = self_contained.then(|| format!("g{explicit}{types:?}"));
        if let Some(i) = key.as_ref().and_then(|k| self.index.get(k)) {
            return *i;
        }
        let i = self.len;
        self.len += types.len() as u32;
        self.groups.push(Group::Rec { explicit, types });
        if let Some(k) = key {
            self.index.insert(k, i);
        }
        i
    }

    /// Encodes the type section.
    pub fn section(&self) -> TypeSection {
        let mut s = TypeSection::new();
        for g in &self.groups {
            match g {
                Group::Func(f) => {
                    s.ty().func_type(f);
                }
                Group::Rec {
                    explicit: true,
                    types,
                } => {
                    s.ty().rec(types.iter().cloned());
                }
                Group::Rec { types, .. } => {
                    s.ty().subtype(&types[0]);
                }
            }
        }
        s
    }
}
