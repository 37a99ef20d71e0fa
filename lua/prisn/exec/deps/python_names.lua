-- prisn.exec.deps.python_names: which PyPI distribution provides an import
-- name, for the import scan of scripts that declare no dependencies.
--
-- Only names that differ from their distribution are listed: `import requests`
-- installs "requests" without help (pip normalizes case and '-'/'_'/'.', so
-- sentry_sdk -> sentry-sdk needs no entry either). Keys are case-sensitive
-- import names, as Python sees them.
--
-- Dotted keys name a submodule of a namespace package: the scan tries the
-- longest dotted prefix of an import first, so `from google.cloud import
-- storage` and `import google.protobuf` resolve separately. The top-level
-- names in NAMESPACES are never installed by themselves: `import google`
-- alone says nothing about which google-* distribution is meant, so it is
-- skipped rather than guessed.
--
-- Where one import name has several distributions, the entry picks the one a
-- script most likely wants and says so (psycopg2 -> psycopg2-binary: it
-- installs without a compiler and libpq headers).
local M = {}

M.DISTRIBUTIONS = {
  -- the ones everybody trips over
  yaml = "PyYAML",
  PIL = "Pillow",
  cv2 = "opencv-python",
  sklearn = "scikit-learn",
  skimage = "scikit-image",
  bs4 = "beautifulsoup4",
  dotenv = "python-dotenv",
  dateutil = "python-dateutil",
  jwt = "PyJWT",
  Crypto = "pycryptodome",
  Cryptodome = "pycryptodomex",
  OpenSSL = "pyOpenSSL",
  nacl = "PyNaCl",
  argon2 = "argon2-cffi",
  gnupg = "python-gnupg",
  jose = "python-jose",
  attr = "attrs",
  serial = "pyserial",
  usb = "pyusb",
  hid = "hidapi",
  can = "python-can",
  bluetooth = "PyBluez",
  magic = "python-magic",
  docx = "python-docx",
  pptx = "python-pptx",
  odf = "odfpy",
  fitz = "PyMuPDF",
  fpdf = "fpdf2", -- the maintained fork; same import name as the abandoned fpdf
  pdfminer = "pdfminer.six",
  camelot = "camelot-py",
  tabula = "tabula-py",
  frontmatter = "python-frontmatter",
  markdown_it = "markdown-it-py",
  barcode = "python-barcode",
  shapefile = "pyshp",
  osgeo = "GDAL",
  pywt = "PyWavelets",
  cairo = "pycairo",
  OpenGL = "PyOpenGL",
  mpl_toolkits = "matplotlib",
  pylab = "matplotlib",
  Bio = "biopython",
  faiss = "faiss-cpu",
  umap = "umap-learn",
  absl = "absl-py",
  llama_cpp = "llama-cpp-python",
  whisper = "openai-whisper",
  speech_recognition = "SpeechRecognition",
  vlc = "python-vlc",
  mpv = "python-mpv",
  ffmpeg = "ffmpeg-python",
  -- system, network and hardware
  MySQLdb = "mysqlclient",
  mysql = "mysql-connector-python",
  psycopg2 = "psycopg2-binary",
  bson = "pymongo", -- bundled with pymongo; the separate "bson" package conflicts with it
  gridfs = "pymongo",
  cassandra = "cassandra-driver",
  opensearchpy = "opensearch-py",
  zmq = "pyzmq",
  nats = "nats-py",
  stomp = "stomp.py",
  paho = "paho-mqtt",
  kafka = "kafka-python",
  memcache = "python-memcached",
  snappy = "python-snappy",
  grpc = "grpcio",
  grpc_tools = "grpcio-tools",
  socks = "PySocks",
  websocket = "websocket-client",
  socketio = "python-socketio",
  engineio = "python-engineio",
  dns = "dnspython",
  nmap = "python-nmap",
  whois = "python-whois",
  ldap = "python-ldap",
  smb = "pysmb",
  git = "GitPython",
  github = "PyGithub",
  gitlab = "python-gitlab",
  jenkins = "python-jenkins",
  consul = "python-consul",
  daemon = "python-daemon",
  systemd = "systemd-python",
  dbus = "dbus-python",
  gi = "PyGObject",
  wx = "wxPython",
  Xlib = "python-xlib",
  RPi = "RPi.GPIO",
  board = "adafruit-blinka",
  crontab = "python-crontab",
  pkg_resources = "setuptools",
  _cffi_backend = "cffi",
  win32api = "pywin32",
  win32con = "pywin32",
  win32gui = "pywin32",
  win32com = "pywin32",
  win32clipboard = "pywin32",
  pythoncom = "pywin32",
  pywintypes = "pywin32",
  -- text and web
  Levenshtein = "python-Levenshtein",
  slugify = "python-slugify",
  multipart = "python-multipart",
  decouple = "python-decouple",
  telegram = "python-telegram-bot",
  telebot = "pyTelegramBotAPI",
  discord = "discord.py",
  slack = "slackclient",
  readability = "readability-lxml",
  newspaper = "newspaper3k",
  factory = "factory-boy",
  tortoise = "tortoise-orm",
  strawberry = "strawberry-graphql",
  rest_framework = "djangorestframework",
  corsheaders = "django-cors-headers",
  environ = "django-environ",
  debug_toolbar = "django-debug-toolbar",
  crispy_forms = "django-crispy-forms",
  storages = "django-storages",
  django_filters = "django-filter",
  allauth = "django-allauth",
  googleapiclient = "google-api-python-client",
  -- namespace packages (see NAMESPACES)
  ["google.protobuf"] = "protobuf",
  ["google.genai"] = "google-genai",
  ["google.generativeai"] = "google-generativeai",
  ["google.ai.generativelanguage"] = "google-ai-generativelanguage",
  ["google.auth"] = "google-auth",
  ["google.oauth2"] = "google-auth",
  ["google.api_core"] = "google-api-core",
  ["google.api"] = "googleapis-common-protos",
  ["google.rpc"] = "googleapis-common-protos",
  ["google.type"] = "googleapis-common-protos",
  ["google.cloud.secretmanager"] = "google-cloud-secret-manager",
  ["google.cloud.resourcemanager"] = "google-cloud-resource-manager",
  ["azure.core"] = "azure-core",
  ["azure.identity"] = "azure-identity",
  ["azure.functions"] = "azure-functions",
  ["azure.cosmos"] = "azure-cosmos",
  ["azure.servicebus"] = "azure-servicebus",
  ["azure.eventhub"] = "azure-eventhub",
  ["azure.storage.blob"] = "azure-storage-blob",
  ["azure.storage.queue"] = "azure-storage-queue",
  ["azure.storage.fileshare"] = "azure-storage-file-share",
  ["azure.data.tables"] = "azure-data-tables",
  ["azure.keyvault.secrets"] = "azure-keyvault-secrets",
  ["azure.keyvault.keys"] = "azure-keyvault-keys",
  ["azure.mgmt.compute"] = "azure-mgmt-compute",
  ["azure.mgmt.resource"] = "azure-mgmt-resource",
  ["azure.mgmt.storage"] = "azure-mgmt-storage",
  ["azure.mgmt.network"] = "azure-mgmt-network",
  ["ruamel.yaml"] = "ruamel.yaml",
  ["zope.interface"] = "zope.interface",
  ["zope.event"] = "zope.event",
  ["backports.zoneinfo"] = "backports.zoneinfo",
}

-- Top-level names shared by many distributions: never installed as such.
M.NAMESPACES = { google = true, azure = true, ruamel = true, zope = true, backports = true }

-- `from google.cloud import storage` -> google-cloud-storage: Google's cloud
-- libraries follow one naming rule, with an API version suffix dropped
-- (pubsub_v1 -> google-cloud-pubsub). Exceptions are in DISTRIBUTIONS.
local function google_cloud(dotted)
  local service = dotted:match("^google%.cloud%.([%w_]+)")
  if not service then return nil end
  service = service:gsub("_v%d+%w*$", "")
  return "google-cloud-" .. service:gsub("_", "-")
end

--- The distribution for a dotted import (a module, or `module.name` for a
-- name imported from it), or nil when it cannot be told (a bare namespace).
function M.distribution(dotted)
  local prefix = dotted
  while prefix do
    local hit = M.DISTRIBUTIONS[prefix]
    if hit then return hit end
    prefix = prefix:match("^(.*)%.[^.]*$")
  end
  local top = dotted:match("^[^.]+")
  if top == "google" then return google_cloud(dotted) end
  if M.NAMESPACES[top] then return nil end
  return top
end

return M
