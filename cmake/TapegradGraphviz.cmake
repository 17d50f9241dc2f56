# TapegradGraphviz.cmake: resolves TG_GRAPHVIZ (AUTO, ON, OFF) into TAPEGRAD_HAVE_GRAPHVIZ and,
# when on, the imported target PkgConfig::GVC (libgvc + libcgraph, found by pkg-config).
# Only tg_dot_render (src/io/render.c) uses Graphviz; the dot text writer never does, so a
# build without it loses in-process rendering and nothing else.
string(TOUPPER "${TG_GRAPHVIZ}" _tg_graphviz)
set(TAPEGRAD_HAVE_GRAPHVIZ OFF)
if(_tg_graphviz STREQUAL "AUTO")
    pkg_check_modules(GVC QUIET IMPORTED_TARGET libgvc libcgraph)
    if(GVC_FOUND)
        set(TAPEGRAD_HAVE_GRAPHVIZ ON)
        message(STATUS "tapegrad: Graphviz rendering on (libgvc ${GVC_libgvc_VERSION})")
    else()
        message(STATUS "tapegrad: Graphviz rendering off: pkg-config found no libgvc/libcgraph "
                       "(install libgraphviz-dev; tg_dot_render will return TG_ENOTSUP)")
    endif()
elseif(TG_GRAPHVIZ)
    pkg_check_modules(GVC QUIET IMPORTED_TARGET libgvc libcgraph)
    if(NOT GVC_FOUND)
        message(FATAL_ERROR "tapegrad: TG_GRAPHVIZ=ON but pkg-config cannot find libgvc and "
                            "libcgraph; install libgraphviz-dev (Debian) or configure with "
                            "-DTG_GRAPHVIZ=AUTO or OFF")
    endif()
    set(TAPEGRAD_HAVE_GRAPHVIZ ON)
    message(STATUS "tapegrad: Graphviz rendering on (libgvc ${GVC_libgvc_VERSION})")
else()
    message(STATUS "tapegrad: Graphviz rendering off (TG_GRAPHVIZ=${TG_GRAPHVIZ})")
endif()
unset(_tg_graphviz)

# tapegrad_use_graphviz(<target>): compiles <target> with TG_HAVE_GRAPHVIZ=1 and links it
# to Graphviz, privately, when rendering is on; does nothing otherwise. For the library's own
# targets and for tests that call Graphviz themselves.
function(tapegrad_use_graphviz target)
    if(TAPEGRAD_HAVE_GRAPHVIZ)
        target_compile_definitions(${target} PRIVATE TG_HAVE_GRAPHVIZ=1)
        target_link_libraries(${target} PRIVATE PkgConfig::GVC)
    endif()
endfunction()
