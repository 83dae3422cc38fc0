;; The wide-arithmetic proposal, which the engine does not enable.
(module (memory 1) (func (export "_start")
  (i64.const 1) (i64.const 2) (i64.const 3) (i64.const 4) i64.add128 drop drop))
