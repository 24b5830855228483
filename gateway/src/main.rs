//! The `guichet` command.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use guichet_gateway::config::{Config, LogConfig, Override};
use guichet_gateway::reload::ReloadSource;
use guichet_gateway::{demo, directory_cli, echo, logging, saml_cli, server};

#[derive(Parser)]
#[command(
    name = "guichet",
    version,
    about = "Identity-broker reverse proxy for legacy web applications"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The configuration file, and settings that replace some of its values.
#[derive(clap::Args)]
struct ConfigArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// Replace one setting of the file: `--set listen[0].address=127.0.0.1:8080`. The path is
    /// written as configuration errors name fields; the value is YAML. Repeatable.
    /// Parsed by `load`, not by clap, whose error would echo the argument (it may be a secret
    /// typed with the wrong separator) over several lines.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    overrides: Vec<String>,
}

impl ConfigArgs {
    fn load(&self) -> Result<Config, String> {
        let overrides = self.overrides()?;
        Config::load_with_overrides(&self.config, &overrides).map_err(|e| e.to_string())
    }

    fn overrides(&self) -> Result<Vec<Override>, String> {
        self.overrides
            .iter()
            .map(|argument| argument.parse::<Override>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a configuration file. SIGHUP, or a change of the file's content,
    /// reloads it (validated first; an invalid file keeps the running configuration).
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// How often the file's content is compared with the running configuration's.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        watch_interval: std::time::Duration,
    },
    /// Validate a configuration file and exit (0 when valid).
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// The quickstart: the gateway with demo users in front of a built-in header-echo app.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9180")]
        admin: SocketAddr,
        /// Port of the built-in echo application (0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        echo: SocketAddr,
        /// Proxy worker threads (benchmarks pinned to one core use 1).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// No role rules and a single identity header (a benchmark baseline).
        #[arg(long)]
        plain: bool,
    },
    /// Access policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The directory and its cache.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// SAML providers.
    Saml {
        #[command(subcommand)]
        command: SamlCommand,
    },
    /// Print the argon2id hash of a password read from standard input (for users files).
    HashPassword,
    /// Run only the built-in header-echo application (an upstream for trials and benchmarks).
    Echo {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Make every replica read a person (or everyone) from the directory again, e.g. after
    /// their roles changed or their account was locked.
    Invalidate {
        #[command(flatten)]
        config: ConfigArgs,
        /// The directory attribute logins are linked by (a provider's `pivot.directory_attribute`).
        #[arg(long, required_unless_present = "all", requires = "value")]
        attribute: Option<String>,
        /// The person's value for it, e.g. their e-mail address.
        #[arg(long, requires = "attribute")]
        value: Option<String>,
        /// Everyone.
        #[arg(long, conflicts_with_all = ["attribute", "value"])]
        all: bool,
    },
}

#[derive(Subcommand)]
enum SamlCommand {
    /// Print Guichet's SP metadata for one SAML provider (entityID, every app's assertion
    /// consumer URL, single logout, certificates), for the IdP's administrator.
    Metadata {
        #[command(flatten)]
        config: ConfigArgs,
        /// The provider's `id` in the configuration.
        #[arg(long)]
        provider: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Why may (or may not) this person open this URL: the roles computed, the decision and
    /// the rule that made it.
    Explain {
        #[command(flatten)]
        config: ConfigArgs,
        /// The person: a local login, or a pivot value (e-mail, ENT uid...) for the directory.
        #[arg(long)]
        user: String,
        /// The URL as users open it, e.g. `https://bip.example.org/admin/users`.
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// The authentication level the provider would assert (e.g. `eidas2`), for rules
        /// with `min_auth_level`.
        #[arg(long)]
        auth_level: Option<String>,
    },
}

/// The proxy allocates many small, short-lived buffers per request (headers, values); mimalloc
/// handles that pattern markedly better than glibc's allocator (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config: args } => match args
            .load()
            .and_then(|config| saml_cli::check_idp_metadata(&config).map_err(|e| e.to_string()))
        {
            Ok(()) => {
                println!("{}: configuration is valid", args.config.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Policy {
            command:
                PolicyCommand::Explain {
                    config,
                    user,
                    url,
                    method,
                    auth_level,
                },
        } => {
            let config = match config.load() {
                Ok(config) => config,
                Err(e) => return fail(&e),
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => return fail(&format!("cannot start a runtime: {e}")),
            };
            let result = runtime.block_on(async {
                let gateway =
                    guichet_gateway::state::Gateway::new(&config).map_err(|e| e.to_string())?;
                guichet_gateway::explain::explain(
                    &gateway,
                    &user,
                    &url,
                    &method,
                    auth_level.as_deref(),
                )
                .await
                .map_err(|e| e.to_string())
            });
            match result {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Run {
            config: args,
            watch_interval,
        } => {
            let config = match args.load() {
                Ok(config) => config,
                Err(e) => return fail(&e),
            };
            let reload = match args.overrides() {
                Ok(overrides) => ReloadSource {
                    path: args.config.clone(),
                    overrides,
                    watch_interval,
                },
                Err(e) => return fail(&e),
            };
            let _log_writer = logging::init(&config.file.log);
            match server::run_forever(&config, Some(reload)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Demo {
            listen,
            admin,
            echo,
            threads,
            plain,
        } => run_demo(listen, admin, echo, threads, plain),
        Command::Directory {
            command:
                DirectoryCommand::Invalidate {
                    config,
                    attribute,
                    value,
                    all,
                },
        } => {
            let config = match config.load() {
                Ok(config) => config,
                Err(e) => return fail(&e),
            };
            let target = match (all, attribute, value) {
                (true, _, _) => directory_cli::Target::Everyone,
                (false, Some(attribute), Some(value)) => {
                    directory_cli::Target::Person { attribute, value }
                }
                _ => return fail("give --attribute and --value, or --all"),
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => return fail(&format!("cannot start a runtime: {e}")),
            };
            match runtime.block_on(directory_cli::invalidate(&config, &target)) {
                Ok(message) => {
                    println!("{message}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Saml {
            command: SamlCommand::Metadata { config, provider },
        } => match config
            .load()
            .and_then(|config| saml_cli::sp_metadata(&config, &provider).map_err(|e| e.to_string()))
        {
            Ok(xml) => {
                println!("{xml}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::HashPassword => hash_password(),
        Command::Echo { listen } => run_echo(listen),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("guichet: {message}");
    ExitCode::FAILURE
}

fn run_demo(
    listen: SocketAddr,
    admin: SocketAddr,
    echo_address: SocketAddr,
    threads: usize,
    plain: bool,
) -> ExitCode {
    let _log_writer = logging::init(&LogConfig::default());
    let echo = match echo::EchoServer::start(echo_address) {
        Ok(echo) => echo,
        Err(e) => return fail(&format!("cannot start the echo app on {echo_address}: {e}")),
    };
    let build = if plain {
        demo::plain_config
    } else {
        demo::config_with_threads
    };
    let config = match build(listen, admin, echo.address, threads) {
        Ok(config) => config,
        Err(e) => return fail(&e.to_string()),
    };
    println!();
    println!("  Guichet demo");
    println!("  ------------");
    println!("  Open            http://{listen}/   (admin: http://{admin}/metrics)");
    println!(
        "  Upstream        http://{} (the echo app; reach it through Guichet)",
        echo.address
    );
    println!("  Demo users      (login: username or email, password)");
    for user in demo::DEMO_USERS {
        println!(
            "                  {} / {}  ({}: {})",
            user.email, user.password, user.display_name, user.note
        );
    }
    if let Some(guichet_gateway::config::DirectoryBackendConfig::File { path }) = config
        .file
        .directory
        .as_ref()
        .map(|directory| &directory.backend)
    {
        println!(
            "  Directory       {} (edit it: changes apply within 5 s)",
            path.display()
        );
    }
    println!("  Try a spoof     curl -H 'X-Remote-User: admin' http://{listen}/public/");
    println!();
    let result = server::run_forever(&config, None);
    drop(echo);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn run_echo(listen: SocketAddr) -> ExitCode {
    let echo = match echo::EchoServer::start(listen) {
        Ok(echo) => echo,
        Err(e) => return fail(&format!("cannot start the echo app on {listen}: {e}")),
    };
    println!("echo app on http://{}", echo.address);
    // Serves on its own thread until the process is stopped.
    loop {
        std::thread::park();
    }
}

fn hash_password() -> ExitCode {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (echoed): ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    if stdin.lock().read_line(&mut line).is_err() {
        return fail("cannot read the password from standard input");
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return fail("empty password");
    }
    println!("{}", guichet_protocols::local::hash_password(password));
    ExitCode::SUCCESS
}
