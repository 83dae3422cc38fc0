;; A table initialiser that allocates an array of computed length.
(module (type $a (array i8)) (memory 1)
  (table 0 anyref (array.new_default $a (i32.mul (i32.const 65536) (i32.const 60000))))
  (func (export "_start")))
