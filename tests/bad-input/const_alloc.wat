(module (type $a (array i8)) (memory 1)
  (global i32 (i32.const 5))
  (global (ref $a) (array.new_default $a (global.get 0)))
  (func (export "_start")))
