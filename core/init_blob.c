/*
 * init_blob: the sandbox's init without a C library (init_raw.c, built by
 * CMakeLists.txt as its own static program) embedded in prisn's binary as
 * bytes, prisn_init_blob up to prisn_init_blob_end, which sandbox.c puts in
 * a memfd to exec. Where that program is not built (an architecture
 * init_raw.c does not know), the blob is empty and sandbox.c execs prisn's
 * own binary as the init, as before.
 */
__asm__(".section .rodata.prisn_init_blob,\"a\"\n"
        ".global prisn_init_blob\n"
        ".balign 16\n"
        "prisn_init_blob:\n"
#ifdef PRISN_INIT_RAW_PATH
        ".incbin \"" PRISN_INIT_RAW_PATH "\"\n"
#endif
        ".global prisn_init_blob_end\n"
        "prisn_init_blob_end:\n"
        ".previous\n");
