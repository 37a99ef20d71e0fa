local names = require("prisn.exec.deps.python_names")

describe("prisn.exec.deps.python_names", function()
  it("maps import names whose distribution differs", function()
    for import, dist in pairs({ yaml = "PyYAML", PIL = "Pillow", cv2 = "opencv-python", sklearn = "scikit-learn",
      bs4 = "beautifulsoup4", dotenv = "python-dotenv", dateutil = "python-dateutil", jwt = "PyJWT",
      Crypto = "pycryptodome", OpenSSL = "pyOpenSSL", serial = "pyserial", usb = "pyusb", magic = "python-magic",
      docx = "python-docx", pptx = "python-pptx", attr = "attrs", jose = "python-jose", MySQLdb = "mysqlclient",
      psycopg2 = "psycopg2-binary", zmq = "pyzmq", fitz = "PyMuPDF", skimage = "scikit-image",
      telegram = "python-telegram-bot", slugify = "python-slugify", multipart = "python-multipart",
      gi = "PyGObject", wx = "wxPython", Levenshtein = "python-Levenshtein" }) do
      assert.equal(dist, names.distribution(import), import)
    end
  end)

  it("uses the top-level name otherwise, for any submodule", function()
    assert.equal("requests", names.distribution("requests.adapters.HTTPAdapter"))
    assert.equal("PyYAML", names.distribution("yaml.safe_load"))
  end)

  it("prefers the longest dotted prefix and skips bare namespaces", function()
    assert.equal("protobuf", names.distribution("google.protobuf.json_format"))
    assert.equal("google-cloud-secret-manager", names.distribution("google.cloud.secretmanager"))
    assert.equal("google-cloud-storage", names.distribution("google.cloud.storage.Client"))
    assert.equal("google-cloud-error-reporting", names.distribution("google.cloud.error_reporting"))
    assert.equal("google-cloud-pubsub", names.distribution("google.cloud.pubsub_v1"))
    assert.equal("azure-storage-blob", names.distribution("azure.storage.blob.BlobServiceClient"))
    assert.is_nil(names.distribution("google"))
    assert.is_nil(names.distribution("google.cloud"))
    assert.is_nil(names.distribution("google.colab.drive"))
    assert.is_nil(names.distribution("azure.unknown"))
  end)
end)
