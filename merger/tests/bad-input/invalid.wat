;; Does not validate, whatever the features: `_start` leaves a value on the stack.
(module (memory 1) (func (export "_start") i32.const 1))
