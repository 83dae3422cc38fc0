;; A global initialised with a 100,000-element array.
(module (type $a (array i8)) (memory 1)
  (global (ref $a) (array.new $a (i32.const 1) (i32.const 100000)))
  (func (export "_start")))
