# Warnings and sanitizers applied to every target of the project (not to deps).
add_compile_options(-Wall -Wextra -Wno-unused-parameter)
if(GEMMARUN_WERROR)
  add_compile_options(-Werror)
endif()
if(GEMMARUN_SANITIZE)
  add_compile_options(-fsanitize=${GEMMARUN_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${GEMMARUN_SANITIZE})
  # Hot-loop DCHECKs are worth their cost where we look for memory errors anyway.
  add_compile_definitions(GEMMARUN_DCHECKS=1)
endif()
