(module (import "env" "memory" (memory 1 1 shared)) (func (export "_start")))
