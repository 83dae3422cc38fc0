;; merge: stub-foreign
;; Only function imports can be stubbed: the memory stays refused.
(module
  (import "env" "f" (func))
  (import "env" "mem" (memory 1))
  (func (export "_start")))
