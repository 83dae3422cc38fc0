;; A component, not a core module.
(component)
