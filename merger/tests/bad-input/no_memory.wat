;; No memory at all.
(module (func (export "_start")))
