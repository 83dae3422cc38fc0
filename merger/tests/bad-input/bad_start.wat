;; `_start` takes a parameter.
(module (memory 1) (func (export "_start") (param i32)))
