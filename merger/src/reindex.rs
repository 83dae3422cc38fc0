//! Index remapping of one program's code into the merged module, via wasm-encoder's
//! `reencode`, which visits every index in every instruction and constant expression. Its
//! hooks also re-encode the program's tables, globals and element segments as they appear in
//! the output.

use wasm_encoder::reencode::{Error, Reencode};
use wasm_encoder::{ElementSection, TableType};
use wasmparser::{Element, ElementKind};

/// Maps one input's index spaces to the output's.
#[derive(Clone, Debug, Default)]
pub struct Reindex {
    /// Input type index → output type index.
    pub types: Vec<u32>,
    /// Input function index → output function index (imports map to trampolines).
    pub funcs: Vec<u32>,
    /// Output index of the input's memory 0.
    pub memory: u32,
    /// The function that stands for `memory.grow` (a program sharing memory 0 whose declared
    /// maximum is below memory 0's: it enforces the program's maximum).
    pub grow_func: Option<u32>,
    /// The program's table is the shared table 0 ([`crate::plan::shares_table`]): its active
    /// element segments become declarative (its start function fills the table).
    pub shared_table: bool,
    /// The function that stands for `table.grow` (a program on the shared table with a
    /// declared maximum: it enforces the program's maximum).
    pub table_grow_func: Option<u32>,
    pub table_base: u32,
    pub global_base: u32,
    pub tag_base: u32,
    pub elem_base: u32,
    /// Input data index → output data index.
    pub data: Vec<u32>,
    /// Set whenever a type index is remapped; used to tell self-contained rec groups.
    pub touched_type: bool,
    /// Tables keep their size and active element segments stay active
    /// ([`crate::consteval::eager_tables`]); otherwise tables start empty and active segments
    /// become passive, applied by the program's start function.
    pub eager_tables: bool,
}

impl Reencode for Reindex {
    type Error = std::convert::Infallible;

    fn type_index(&mut self, ty: u32) -> Result<u32, Error<Self::Error>> {
        self.touched_type = true;
        Ok(self.types[ty as usize])
    }
    fn function_index(&mut self, func: u32) -> Result<u32, Error<Self::Error>> {
        Ok(self.funcs[func as usize])
    }
    fn memory_index(&mut self, memory: u32) -> Result<u32, Error<Self::Error>> {
        debug_assert_eq!(memory, 0, "inputs have exactly one memory");
        Ok(self.memory)
    }
    fn table_index(&mut self, table: u32) -> Result<u32, Error<Self::Error>> {
        Ok(self.table_base + table)
    }
    fn global_index(&mut self, global: u32) -> Result<u32, Error<Self::Error>> {
        Ok(self.global_base + global)
    }
    fn tag_index(&mut self, tag: u32) -> Result<u32, Error<Self::Error>> {
        Ok(self.tag_base + tag)
    }
    fn element_index(&mut self, element: u32) -> Result<u32, Error<Self::Error>> {
        Ok(self.elem_base + element)
    }
    fn data_index(&mut self, data: u32) -> Result<u32, Error<Self::Error>> {
        Ok(self.data[data as usize])
    }

    fn instruction<'a>(
        &mut self,
        op: wasmparser::Operator<'a>,
    ) -> Result<wasm_encoder::Instruction<'a>, Error<Self::Error>> {
        match (op, self.grow_func, self.table_grow_func) {
            (wasmparser::Operator::MemoryGrow { .. }, Some(f), _)
            | (wasmparser::Operator::TableGrow { .. }, _, Some(f)) => {
                Ok(wasm_encoder::Instruction::Call(f))
            }
            (op, _, _) => wasm_encoder::reencode::utils::instruction(self, op),
        }
    }

    fn table_type(&mut self, ty: wasmparser::TableType) -> Result<TableType, Error<Self::Error>> {
        let mut out = wasm_encoder::reencode::utils::table_type(self, ty)?;
        if !self.eager_tables {
            out.minimum = 0;
        }
        Ok(out)
    }
    fn parse_element(
        &mut self,
        elements: &mut ElementSection,
        element: Element<'_>,
    ) -> Result<(), Error<Self::Error>> {
        let items = self.element_items(element.items)?;
        match element.kind {
            // Applied by the start function's `table.set`s; declared so they may `ref.func`.
            ElementKind::Declared | ElementKind::Active { .. } if self.shared_table => {
                elements.declared(items)
            }
            ElementKind::Declared => elements.declared(items),
            ElementKind::Active {
                table_index,
                offset_expr,
            } if self.eager_tables => elements.active(
                Some(self.table_index(table_index.unwrap_or(0))?),
                &self.const_expr(offset_expr)?,
                items,
            ),
            ElementKind::Active { .. } | ElementKind::Passive => elements.passive(items),
        };
        Ok(())
    }
}
