(module (memory 1) (func (export "_initialize")))
