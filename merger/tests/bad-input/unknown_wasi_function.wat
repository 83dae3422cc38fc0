;; A WASI import that is not a preview1 function.
(module (import "wasi_snapshot_preview1" "nope" (func)) (memory 1) (func (export "_start")))
