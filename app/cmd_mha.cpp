int placeholder_mha; namespace CLI { class App; } namespace attn::cli { void setup_mha(CLI::App&) {} }
