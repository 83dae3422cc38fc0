;; An imported memory.
(module (import "env" "m" (memory 1)) (func (export "_start")))
