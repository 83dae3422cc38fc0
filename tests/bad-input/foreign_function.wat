(module (import "env" "f" (func)) (memory 1) (func (export "_start")))
