;; A WASI function imported with the wrong signature.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32)))
  (memory 1)
  (func (export "_start")))
