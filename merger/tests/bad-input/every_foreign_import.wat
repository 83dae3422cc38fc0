;; Every foreign import is listed, in order, with its kind.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "env" "f" (func))
  (import "wasi_snapshot_preview1" "mem" (memory 1))
  (import "env" "t" (table 1 funcref))
  (import "wasi_snapshot_preview1" "g" (global i32))
  (import "env" "tag" (tag))
  (import "wasi_unstable" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (func (export "_start")))
