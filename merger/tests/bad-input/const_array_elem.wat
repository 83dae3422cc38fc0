;; An element segment item allocating an array whose length is a global.
(module (type $a (array i8)) (memory 1) (global i32 (i32.const 3))
  (elem anyref (item (array.new_default $a (global.get 0))))
  (func (export "_start")))
