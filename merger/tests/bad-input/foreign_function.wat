;; A function of another host module, without stubbing.
(module (import "env" "f" (func)) (memory 1) (func (export "_start")))
