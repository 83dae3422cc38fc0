;; Legacy exception handling (`try`/`catch`), which Cranelift cannot compile.
(module (memory 1) (tag $e)
  (func (export "_start")
    try
      throw $e
    catch $e
    end))
