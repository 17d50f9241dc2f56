# TapegradOptions.cmake: the compile settings every tapegrad target shares (warnings,
# -Werror, sanitizers), applied per target so that a project embedding tapegrad through
# add_subdirectory does not inherit them.

# tapegrad_target_settings(<target> [RELAXED <flag>...])
#   Defines _POSIX_C_SOURCE=200809L, adds the house warning set and -ffp-contract=off for C
#   sources, -Werror when TG_WERROR is ON, and the sanitizers when TG_SANITIZE (ASan + UBSan)
#   or TG_TSAN (ThreadSanitizer) is ON. RELAXED flags (e.g. -Wno-conversion) come after the
#   warning set so they win; tests use them for third-party macros they cannot change.
function(tapegrad_target_settings target)
    cmake_parse_arguments(PARSE_ARGV 1 ARG "" "" "RELAXED")
    # Strict -std=c11 hides POSIX from the libc headers; the project's own code may use
    # POSIX.1-2008 (clock_gettime, popen, strdup, ...). Public headers must not need it:
    # consumers do not get this definition.
    target_compile_definitions(${target} PRIVATE _POSIX_C_SOURCE=200809L)
    if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
        target_compile_options(${target} PRIVATE
            $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                    -Wstrict-prototypes -Wmissing-prototypes>)
        # Every multiply and add rounds on its own, as GCC's ISO C mode has it: clang would
        # otherwise fuse a * b + c into one multiply-add wherever the target has one
        # (-march=x86-64-v3 and up, every AArch64), and the library's results, its own exp,
        # log and tanh (core/detmath.h) among them, would change bits with the machine.
        target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:-ffp-contract=off>)
        if(TG_WERROR)
            target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:-Werror>)
        endif()
        if(ARG_RELAXED)
            target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:${ARG_RELAXED}>)
        endif()
    endif()
    if(TG_SANITIZE)
        set(_flags ${TG_SANITIZE_FLAGS})
    elseif(TG_TSAN)
        set(_flags ${TG_TSAN_FLAGS})
    else()
        set(_flags "")
    endif()
    if(_flags)
        target_compile_options(${target} PRIVATE ${_flags})
        get_target_property(_type ${target} TYPE)
        if(NOT _type STREQUAL "STATIC_LIBRARY" AND NOT _type STREQUAL "OBJECT_LIBRARY")
            target_link_options(${target} PRIVATE ${_flags})
        endif()
    endif()
endfunction()
